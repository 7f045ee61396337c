/*
 * members.h - the member table, shared by members.c (which keeps it from
 * states and events) and diffs.c (which makes a large channel's diffs of
 * it).  Nothing else sees these structs.
 *
 * Generations (large channels): every change of a member goes in the
 * channel's open generation, ch->gen + 1; a diff, or a catch-up for one
 * watcher, closes it.  A member remembers the generation of its last
 * change, of its last join, and since when it was absent before that
 * join, which is enough to tell a watcher at any generation still kept
 * what is new to it (diffs.c).
 */
#ifndef PRESENCE_MEMBERS_H
#define PRESENCE_MEMBERS_H

#include "relay.h"

struct user
{
	struct hnode node;			/* in users, by id */
	lws_dll2_owner_t members;	/* its struct member, one per channel */
	char	   *message;		/* its status message; NULL: none */
	lws_usec_t	lonely_at;		/* when it was left with a message and no member */
	char		id[];
};

struct member
{
	struct hnode node;			/* in its channel's members, by user id */
	lws_dll2_t	by_user;		/* in its user's members */
	lws_dll2_t	order;			/* in its channel's order (by gen) */
	lws_dll2_t	tomb;			/* in its channel's tombs, while gone (large) */
	struct channel *ch;
	struct user *u;
	enum presence_status status;
	char	   *meta;			/* JSON written afresh; NULL: null */
	int64_t		gen;			/* of its last change (a leave too) */
	int64_t		join_gen;		/* of its last join */
	int64_t		absent_from;	/* absent from then until join_gen; 0: as far back as kept */
	unsigned	present:1;		/* shown in the channel (large: else a tombstone) */
};

void		free_member(struct member *m);
void		members_close_gens(struct channel *ch);

#endif							/* PRESENCE_MEMBERS_H */
