/*-------------------------------------------------------------------------
 *
 * bound.c
 *	  Bound sessions end when the database connection that opened them
 *	  closes, so a relay that crashes leaves no ghosts behind.
 *
 * Each backend remembers, in its own memory, the sessions it bound; an
 * exit callback ends those it still owns.  The registry records the owner,
 * so a session re-bound by another connection is left alone.  A backend
 * that dies without running the callback takes the server through crash
 * recovery, which rebuilds the registry anyway.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "registry.h"

typedef struct BoundKey
{
	char		user[PRESENCE_MAX_ID_BYTES + 1];
	char		session[PRESENCE_MAX_ID_BYTES + 1];
} BoundKey;

static HTAB *bound_sessions = NULL;

static void
make_key(BoundKey *key, PresenceId user, PresenceId session)
{
	memset(key, 0, sizeof(*key));
	memcpy(key->user, user.data, user.len);
	memcpy(key->session, session.data, session.len);
}

static void
bound_release_all(int code, Datum arg)
{
	HASH_SEQ_STATUS seq;
	BoundKey   *key;

	if (presence_shared == NULL || presence_shared->state != REGISTRY_READY)
		return;

	/*
	 * A FATAL in the middle of a registry read may leave a partition lock
	 * held; this process is leaving, so let go of everything first.
	 */
	LWLockReleaseAll();
	hash_seq_init(&seq, bound_sessions);
	while ((key = hash_seq_search(&seq)) != NULL)
	{
		PresenceId	user = {key->user, strlen(key->user)};
		PresenceId	session = {key->session, strlen(key->session)};

		registry_end_owned_session(user, session);
	}
}

/* Notes that this backend bound the session; idempotent. */
void
bound_remember(PresenceId user, PresenceId session)
{
	BoundKey	key;

	if (bound_sessions == NULL)
	{
		HASHCTL		info;

		info.keysize = sizeof(BoundKey);
		info.entrysize = sizeof(BoundKey);
		info.hcxt = TopMemoryContext;
		bound_sessions = hash_create("presence bound sessions", 64, &info,
									 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		before_shmem_exit(bound_release_all, 0);
	}
	make_key(&key, user, session);
	hash_search(bound_sessions, &key, HASH_ENTER, NULL);
}

/* Forgets a session this backend no longer has to end. */
void
bound_forget(PresenceId user, PresenceId session)
{
	BoundKey	key;

	if (bound_sessions == NULL)
		return;
	make_key(&key, user, session);
	hash_search(bound_sessions, &key, HASH_REMOVE, NULL);
}
