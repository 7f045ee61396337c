/*-------------------------------------------------------------------------
 *
 * persist.h
 *	  The worker's output: rows for the tables (persist.c) and
 *	  notifications (notify.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PRESENCE_PERSIST_H
#define PRESENCE_PERSIST_H

#include "lib/stringinfo.h"

#include "registry.h"

/* pg_advisory_xact_lock(PRESENCE_ADVISORY_LOCK, 0) guards folding */
#define PRESENCE_ADVISORY_LOCK	1886545267	/* "pres" in ASCII */

extern bool persist_batch(PresenceBatch *batch);
extern bool persist_flush(void);
extern int64 persist_reserve_seq(int64 last_used, int n);
extern void persist_load(TimestampTz now, bool with_members);
extern bool persist_has_memberships(void);

extern void notify_payload(StringInfo buf, const PresenceChange *change);
extern void notify_changes(PresenceChange *changes, int n, int64 *last_seq);

#endif							/* PRESENCE_PERSIST_H */
