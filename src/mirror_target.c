/*-------------------------------------------------------------------------
 *
 * mirror_target.c
 *	  Checks a mirror's table and columns against the catalogs, and tells
 *	  which user ids are values of its id column's type.
 *
 * mirror() checks a configuration before it keeps it, and the flusher
 * checks it again at every fold, since the table may have been altered
 * since: the same function raises the same ERROR for both, which mirror()
 * returns to its caller and the flusher writes to the server log.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/catalog.h"
#include "catalog/dependency.h"
#include "catalog/pg_class.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "mirror.h"

/* The status column must hold the longest status, 'offline'. */
#define STATUS_MAX_CHARS	7

static const char *const status_labels[] = {"online", "away", "offline"};

/* A qualified type name, with the column's typmod, for a cast. */
static char *
type_name(Oid type, int32 typmod)
{
	return format_type_extended(type, typmod,
								FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);
}

/*
 * The column's attribute, checked to exist and, when the flusher writes
 * it, to be writable.
 */
static Form_pg_attribute
find_column(Relation rel, const char *name, const char *role, bool written)
{
	AttrNumber	attnum = get_attnum(RelationGetRelid(rel), name);
	Form_pg_attribute att;

	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						name, RelationGetRelationName(rel)),
				 errdetail("It was given as the %s.", role),
				 errhint("Column names are taken as they are, case included: 'isOnline' names the column \"isOnline\".")));
	if (attnum < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
				 errmsg("cannot mirror system column \"%s\"", name)));
	att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);
	if (written && att->attgenerated)
		ereport(ERROR,
				(errcode(ERRCODE_GENERATED_ALWAYS),
				 errmsg("column \"%s\" of relation \"%s\" is a generated column",
						name, RelationGetRelationName(rel))));
	if (written && att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
		ereport(ERROR,
				(errcode(ERRCODE_GENERATED_ALWAYS),
				 errmsg("column \"%s\" of relation \"%s\" is an identity column",
						name, RelationGetRelationName(rel))));
	return att;
}

/* Raises 42804 for a column whose type the mirror cannot write. */
static void
wrong_type(Relation rel, Form_pg_attribute att, const char *role,
		   const char *wanted)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("column \"%s\" of relation \"%s\" is of type %s",
					NameStr(att->attname), RelationGetRelationName(rel),
					format_type_with_typemod(att->atttypid, att->atttypmod)),
			 errdetail("The %s must be of type %s.", role, wanted)));
}

/* An enum with the three statuses among its labels. */
static bool
enum_has_statuses(Oid type)
{
	for (size_t i = 0; i < lengthof(status_labels); i++)
	{
		HeapTuple	tuple = SearchSysCache2(ENUMTYPOIDNAME, ObjectIdGetDatum(type),
											CStringGetDatum(status_labels[i]));

		if (!HeapTupleIsValid(tuple))
			return false;
		ReleaseSysCache(tuple);
	}
	return true;
}

/* A status column: text-like and long enough, or an enum of the statuses. */
static void
check_status_type(Relation rel, Form_pg_attribute att)
{
	int32		typmod = att->atttypmod;
	Oid			base = getBaseTypeAndTypmod(att->atttypid, &typmod);
	char		category;
	bool		preferred;

	get_type_category_preferred(base, &category, &preferred);
	if (category == TYPCATEGORY_ENUM)
	{
		if (!enum_has_statuses(base))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("enum type %s of column \"%s\" lacks a status",
							format_type_be(base), NameStr(att->attname)),
					 errdetail("An enum status column needs the labels 'online', 'away' and 'offline'.")));
		return;
	}
	if (category != TYPCATEGORY_STRING)
		wrong_type(rel, att, "status column", "text, varchar, or an enum of 'online', 'away' and 'offline'");
	if ((base == VARCHAROID || base == BPCHAROID) && typmod >= 0 &&
		typmod - VARHDRSZ < STATUS_MAX_CHARS)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of relation \"%s\" is too short for a status",
						NameStr(att->attname), RelationGetRelationName(rel)),
				 errdetail("It holds %d characters; 'offline' takes %d.",
						   typmod - VARHDRSZ, STATUS_MAX_CHARS)));
}

/*
 * The id column: any type whose values have an equality operator; ids go
 * to it from text, through the type's input function.  Returns how the
 * flusher tells valid ids beforehand.
 */
static MirrorIdCheck
check_id_type(Relation rel, Form_pg_attribute att, MirrorTarget *target)
{
	Oid			base = getBaseType(att->atttypid);
	TypeCacheEntry *tce = lookup_type_cache(att->atttypid, TYPECACHE_EQ_OPR);
	HeapTuple	tuple;
	Form_pg_operator op;

	if (!OidIsValid(tce->eq_opr))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("type %s of column \"%s\" has no equality operator",
						format_type_be(att->atttypid), NameStr(att->attname)),
				 errdetail("The id column is compared with user ids.")));
	tuple = SearchSysCache1(OPEROID, ObjectIdGetDatum(tce->eq_opr));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for operator %u", tce->eq_opr);
	op = (Form_pg_operator) GETSTRUCT(tuple);
	target->id_eq = psprintf("OPERATOR(%s.%s)",
							 quote_identifier(get_namespace_name(op->oprnamespace)),
							 NameStr(op->oprname));
	ReleaseSysCache(tuple);

	/* Cast to the type without its typmod: varchar(n) must not cut ids. */
	target->id_cast = base == TEXTOID && att->atttypid == TEXTOID ? "" :
		psprintf("::%s", format_type_extended(att->atttypid, -1,
											  FORMAT_TYPE_FORCE_QUALIFY));
	switch (base)
	{
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
		case NAMEOID:
			return MIRROR_ID_ANY;
		case INT2OID:
			return MIRROR_ID_INT2;
		case INT4OID:
			return MIRROR_ID_INT4;
		case INT8OID:
			return MIRROR_ID_INT8;
		case UUIDOID:
			return MIRROR_ID_UUID;
		default:
			return MIRROR_ID_TRY;
	}
}

/*
 * Checks the configuration against the table as it is now, locks the table
 * in lockmode, and fills in target.  Returns false if the table no longer
 * exists; raises an ERROR for anything else that is wrong.
 */
bool
mirror_resolve(const MirrorConfig *config, LOCKMODE lockmode,
			   MirrorTarget *target)
{
	Relation	rel = try_relation_open(config->relid, lockmode);
	Form_pg_attribute att;
	int32		typmod;
	Oid			base;
	Oid			ext;

	if (rel == NULL)
		return false;
	memset(target, 0, sizeof(*target));
	target->relid = config->relid;
	target->owner = rel->rd_rel->relowner;
	target->table = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
											   RelationGetRelationName(rel));

	if (rel->rd_rel->relkind != RELKIND_RELATION &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot mirror \"%s\"", RelationGetRelationName(rel)),
				 errdetail("Only tables can be mirrored.")));
	if (rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot mirror temporary table \"%s\"",
						RelationGetRelationName(rel)),
				 errdetail("The flusher cannot see another session's temporary tables.")));
	ext = get_extension_oid("presence", true);
	if (IsCatalogRelationOid(config->relid) ||
		(OidIsValid(ext) &&
		 getExtensionOfObject(RelationRelationId, config->relid) == ext))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot mirror \"%s\"", RelationGetRelationName(rel)),
				 errdetail("System catalogs and presence's own tables cannot be mirrored.")));

	att = find_column(rel, config->id_column, "id column", false);
	target->id_column = pstrdup(quote_identifier(config->id_column));
	target->id_check = check_id_type(rel, att, target);

	if (config->online_column)
	{
		att = find_column(rel, config->online_column, "online column", true);
		if (getBaseType(att->atttypid) != BOOLOID)
			wrong_type(rel, att, "online column", "boolean");
		target->online_column = pstrdup(quote_identifier(config->online_column));
		target->online_type = type_name(att->atttypid, att->atttypmod);
	}
	if (config->last_active_column)
	{
		att = find_column(rel, config->last_active_column, "last_active column", true);
		typmod = att->atttypmod;
		base = getBaseTypeAndTypmod(att->atttypid, &typmod);
		if (base != TIMESTAMPTZOID && base != TIMESTAMPOID)
			wrong_type(rel, att, "last_active column",
					   "timestamp with time zone (or without: it is then written in UTC)");
		target->last_active_column = pstrdup(quote_identifier(config->last_active_column));
		target->last_active_type = type_name(att->atttypid, att->atttypmod);
		target->last_active_local = base == TIMESTAMPOID;
	}
	if (config->status_column)
	{
		att = find_column(rel, config->status_column, "status column", true);
		check_status_type(rel, att);
		target->status_column = pstrdup(quote_identifier(config->status_column));
		target->status_type = type_name(att->atttypid, att->atttypmod);
	}

	/* The lock is kept until the transaction ends. */
	relation_close(rel, NoLock);
	return true;
}

/*
 * Whether the text is accepted by int2in, int4in or int8in (PostgreSQL
 * 15's pg_strtoint16/32/64): spaces, a sign, digits, spaces, in range.
 */
static bool
valid_integer(const char *s, int64 min, int64 max)
{
	uint64		limit;
	uint64		value = 0;
	bool		negative = false;

	while (*s && isspace((unsigned char) *s))
		s++;
	if (*s == '-' || *s == '+')
		negative = *s++ == '-';
	if (!isdigit((unsigned char) *s))
		return false;
	limit = negative ? (uint64) (-(min + 1)) + 1 : (uint64) max;
	while (isdigit((unsigned char) *s))
	{
		uint64		digit = *s++ - '0';

		if (value > (limit - digit) / 10)
			return false;
		value = value * 10 + digit;
	}
	while (*s && isspace((unsigned char) *s))
		s++;
	return *s == '\0';
}

/*
 * Whether the text is accepted by uuid_in: 32 hex digits, a hyphen
 * allowed after any group of four but the last, the whole optionally in
 * braces, nothing else.
 */
static bool
valid_uuid(const char *s)
{
	bool		braces = *s == '{';

	if (braces)
		s++;
	for (int i = 0; i < 16; i++)
	{
		if (!isxdigit((unsigned char) s[0]) || !isxdigit((unsigned char) s[1]))
			return false;
		s += 2;
		if (*s == '-' && i % 2 == 1 && i < 15)
			s++;
	}
	if (braces && *s++ != '}')
		return false;
	return *s == '\0';
}

/* Whether the id is sure to cast to the id column's type. */
bool
mirror_id_valid(MirrorIdCheck check, const char *id)
{
	switch (check)
	{
		case MIRROR_ID_INT2:
			return valid_integer(id, PG_INT16_MIN, PG_INT16_MAX);
		case MIRROR_ID_INT4:
			return valid_integer(id, PG_INT32_MIN, PG_INT32_MAX);
		case MIRROR_ID_INT8:
			return valid_integer(id, PG_INT64_MIN, PG_INT64_MAX);
		case MIRROR_ID_UUID:
			return valid_uuid(id);
		case MIRROR_ID_ANY:
		case MIRROR_ID_TRY:
			break;
	}
	return true;
}
