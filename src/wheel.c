/*-------------------------------------------------------------------------
 *
 * wheel.c
 *	  Timing wheels for the registry's deadlines; see wheel.h.
 *
 * A deadline is filed in the slot that ends after it, so a due timer is
 * always past its deadline, and a timer filed again (at a later deadline)
 * always lands in a later slot: one pass over a slot terminates.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "wheel.h"

static inline int64
slot_of(TimestampTz t)
{
	return t / WHEEL_SLOT_USEC;
}

void
wheel_init(PresenceWheel *wheel, TimestampTz now)
{
	wheel->done = slot_of(now);
	for (int i = 0; i < WHEEL_SLOTS; i++)
		dlist_init(&wheel->slots[i]);
}

void
wheel_file(PresenceWheel *wheel, WheelTimer *timer, TimestampTz deadline)
{
	int64		slot = (deadline + WHEEL_SLOT_USEC - 1) / WHEEL_SLOT_USEC;

	/* Never in a slot already looked at: it would wait a whole turn. */
	slot = Max(slot, wheel->done + 1);
	if (wheel_filed(timer))
		dlist_delete(&timer->node);
	dlist_push_tail(&wheel->slots[slot % WHEEL_SLOTS], &timer->node);
	timer->slot = slot;
}

void
wheel_cancel(WheelTimer *timer)
{
	if (wheel_filed(timer))
	{
		dlist_delete(&timer->node);
		timer->slot = 0;
	}
}

/*
 * Calls due() for every timer whose slot has come, taking it off the wheel
 * first; due() files it again if its deadline has moved.  A wheel left
 * alone for more than a turn is looked at once, whole.
 */
void
wheel_expire(PresenceWheel *wheel, TimestampTz now, WheelDue due, void *arg)
{
	int64		now_slot = slot_of(now);
	int64		from = Max(wheel->done + 1, now_slot - WHEEL_SLOTS + 1);

	/* Due before the loop: due() may file timers, which must be later. */
	if (now_slot <= wheel->done)
		return;
	wheel->done = now_slot;
	for (int64 s = from; s <= now_slot; s++)
	{
		dlist_mutable_iter iter;

		dlist_foreach_modify(iter, &wheel->slots[s % WHEEL_SLOTS])
		{
			WheelTimer *timer = dlist_container(WheelTimer, node, iter.cur);

			if (timer->slot > now_slot)
				continue;		/* a later turn */
			dlist_delete(&timer->node);
			timer->slot = 0;
			due(timer, now, arg);
		}
	}
}
