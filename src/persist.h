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

/*
 * The sub-id of the lock on the extension's own pg_extension row that
 * guards folding (persist.c, lock_tables).
 */
#define PRESENCE_LOCK_SUBID		1

extern bool persist_batch(PresenceBatch *batch);
extern bool persist_flush(bool in_flusher);
extern int64 persist_reserve_seq(int64 last_used, int n);
extern void persist_load(TimestampTz now, bool with_members);
extern bool persist_has_memberships(void);

extern void notify_payload(StringInfo buf, const PresenceChange *change);
extern void notify_changes(PresenceChange *changes, int n, int64 *last_seq);

#endif							/* PRESENCE_PERSIST_H */
