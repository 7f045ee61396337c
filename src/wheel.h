/*-------------------------------------------------------------------------
 *
 * wheel.h
 *	  Timing wheels: the registry's deadlines (session timeout, idle
 *	  timeout), filed by time so that the sweep looks only at those due.
 *
 * A heartbeat only moves a timestamp; it never touches a wheel.  When an
 * entry's slot comes due, its owner looks at the timestamp: past the
 * deadline, the entry expires; refreshed since, it is filed again at its new
 * deadline.  So each entry costs the sweep one look per timeout, and a
 * heartbeat costs no list operation at all.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PRESENCE_WHEEL_H
#define PRESENCE_WHEEL_H

#include "datatype/timestamp.h"
#include "lib/ilist.h"

/* 4096 slots of 100 ms: deadlines up to about 7 minutes ahead are looked at
 * once; later ones once per turn of the wheel until due. */
#define WHEEL_SLOTS			4096
#define WHEEL_SLOT_USEC		(100 * 1000)

typedef struct PresenceWheel
{
	int64		done;			/* the last slot looked at */
	dlist_head	slots[WHEEL_SLOTS];
} PresenceWheel;

typedef struct WheelTimer
{
	dlist_node	node;
	int64		slot;			/* 0 while not filed */
} WheelTimer;

typedef void (*WheelDue) (WheelTimer *timer, TimestampTz now, void *arg);

/* The entry a timer is embedded in. */
#define wheel_container(type, member, timer) \
	((type *) ((char *) (timer) - offsetof(type, member)))

extern void wheel_init(PresenceWheel *wheel, TimestampTz now);
extern void wheel_file(PresenceWheel *wheel, WheelTimer *timer,
					   TimestampTz deadline);
extern void wheel_cancel(WheelTimer *timer);
extern void wheel_expire(PresenceWheel *wheel, TimestampTz now, WheelDue due,
						 void *arg);

static inline bool
wheel_filed(const WheelTimer *timer)
{
	return timer->slot != 0;
}

#endif							/* PRESENCE_WHEEL_H */
