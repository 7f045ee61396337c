/*-------------------------------------------------------------------------
 *
 * mirror.h
 *	  Mirrors (version 1.1): an application's own users table, whose
 *	  online, last activity and status columns the flusher keeps in step.
 *
 * presence.mirrors holds what mirror() was told; mirror_target.c checks it
 * against the catalogs (for mirror(), and again at every fold, since the
 * table may have changed since), mirror_api.c has the SQL functions and
 * mirror.c the flusher's writes.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PRESENCE_MIRROR_H
#define PRESENCE_MIRROR_H

#include "presence.h"

/* How the flusher tells, before any statement, whether an id fits the id column's type. */
typedef enum MirrorIdCheck
{
	MIRROR_ID_ANY,				/* text-like: every id is a value */
	MIRROR_ID_INT2,
	MIRROR_ID_INT4,
	MIRROR_ID_INT8,
	MIRROR_ID_UUID,
	MIRROR_ID_TRY				/* another type: the statement tells */
} MirrorIdCheck;

/* A mirrored table, checked, with every name quoted for SQL. */
typedef struct MirrorTarget
{
	Oid			relid;
	Oid			owner;			/* the statements run as this role */
	char	   *table;			/* schema-qualified */
	char	   *id_column;
	char	   *id_cast;		/* "::type" from text, or "" for text */
	char	   *id_eq;			/* OPERATOR(schema.=) of the id's type */
	MirrorIdCheck id_check;
	char	   *online_column;	/* NULL when not mirrored */
	char	   *online_type;
	char	   *last_active_column;
	char	   *last_active_type;
	bool		last_active_local;	/* timestamp without time zone: in UTC */
	char	   *status_column;
	char	   *status_type;
} MirrorTarget;

/* What mirror() was told, as presence.mirrors keeps it. */
typedef struct MirrorConfig
{
	Oid			relid;
	char	   *id_column;
	char	   *online_column;
	char	   *last_active_column;
	char	   *status_column;
} MirrorConfig;

/* mirror_target.c */
extern bool mirror_resolve(const MirrorConfig *config, LOCKMODE lockmode,
						   MirrorTarget *target);
extern bool mirror_id_valid(MirrorIdCheck check, const char *id);

/* One user as the mirrors write it: as others see them. */
typedef struct MirrorRow
{
	char	   *user_id;
	PresenceStatus status;
	TimestampTz last_active;	/* 0: leave the column as it is */
} MirrorRow;

typedef struct MirrorRows
{
	MirrorRow  *rows;
	int			n;
	int			max;
} MirrorRows;

/* mirror.c: the flusher's side */
extern bool mirror_configured(void);
extern void mirror_rows_add(MirrorRows *rows, const char *user_id,
							const char *status, TimestampTz last_active,
							bool visible);
extern void mirror_rows_from_spi(MirrorRows *rows);
extern bool mirror_flush(MirrorRows *changed);
extern void mirror_defer(MirrorRows *changed);

#endif							/* PRESENCE_MIRROR_H */
