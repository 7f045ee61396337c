/*
 * metrics.c - counters for GET /metrics, in Prometheus text format 0.0.4.
 *
 * The counters and gauges are struct relay_metrics, which the modules bump
 * and set themselves; this file only reads them.  The loop is
 * single-threaded, so plain integers do.  The histogram is the
 * delay from a notification reaching the relay to its frame being written
 * to one client: it shows both a slow database link (no) and slow clients.
 */
#include "relay.h"

#include <inttypes.h>

struct relay_metrics relay_metrics;

/* upper bounds in microseconds; the last bucket is +Inf */
static const lws_usec_t bounds[] = {
	500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000
};
static uint64_t buckets[LWS_ARRAY_SIZE(bounds) + 1];
static uint64_t delay_count;
static lws_usec_t delay_sum;

void
metrics_observe_delay(lws_usec_t us)
{
	size_t		i;

	for (i = 0; i < LWS_ARRAY_SIZE(bounds) && us > bounds[i]; i++)
		;
	buckets[i]++;
	delay_count++;
	delay_sum += us;
}

#define COUNTER(name, help, value) \
	jbuf_printf(out, "# HELP " name " " help "\n# TYPE " name " counter\n" \
				name " %" PRIu64 "\n", (uint64_t) (value))

/* A counter with one label, all its values under one HELP and TYPE. */
#define LABELLED(name, help, label, ...) \
	labelled(out, name, help, label, (const char *const[]){__VA_ARGS__, NULL})

static void
labelled(struct jbuf *out, const char *name, const char *help,
		 const char *label, const char *const *pairs)
{
	jbuf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
	for (; pairs[0]; pairs += 2)
		jbuf_printf(out, "%s{%s=\"%s\"} %s\n", name, label, pairs[0], pairs[1]);
}

static const char *
u64(char *buf, uint64_t v)
{
	lws_snprintf(buf, 24, "%" PRIu64, v);
	return buf;
}

/* Appends the metrics text to out. */
void
metrics_render(struct jbuf *out)
{
	uint64_t	cumulative = 0;
	size_t		i;
	char		a[24],
				b[24],
				c[24],
				d[24];

	jbuf_printf(out,
					  "# HELP presence_relay_connections Open WebSocket connections.\n"
					  "# TYPE presence_relay_connections gauge\n"
					  "presence_relay_connections{kind=\"tracked\"} %d\n"
					  "presence_relay_connections{kind=\"watcher\"} %d\n"
					  "# HELP presence_relay_db_up Whether the database link is up.\n"
					  "# TYPE presence_relay_db_up gauge\n"
					  "presence_relay_db_up %d\n",
					  relay_metrics.tracked, relay_metrics.clients - relay_metrics.tracked,
					  relay_metrics.db_up);
	jbuf_printf(out,
				"# HELP presence_relay_max_connections WebSocket connections allowed (--max-connections).\n"
				"# TYPE presence_relay_max_connections gauge\n"
				"presence_relay_max_connections %d\n", relay_opts.max_connections);
	COUNTER("presence_relay_connections_total",
			"WebSocket connections accepted.", relay_metrics.connections_total);
	COUNTER("presence_relay_auth_failures_total",
			"Requests refused for a missing or bad token.",
			relay_metrics.auth_failures_total);
	COUNTER("presence_relay_messages_sent_total",
			"WebSocket messages sent to clients.",
			relay_metrics.messages_sent_total);
	COUNTER("presence_relay_notifications_total",
			"Notifications received from PostgreSQL.",
			relay_metrics.notifications_total);
	COUNTER("presence_relay_db_reconnects_total",
			"Times the database link was re-established after a loss.",
			relay_metrics.db_reconnects_total);
	COUNTER("presence_relay_slow_clients_dropped_total",
			"Clients closed (1008) for falling behind.",
			relay_metrics.slow_clients_dropped_total);
	COUNTER("presence_relay_oversized_frames_total",
			"Clients closed (1009) for a message over 64 kB.",
			relay_metrics.oversized_frames_total);
	COUNTER("presence_relay_malformed_messages_total",
			"Client messages ignored as malformed.",
			relay_metrics.malformed_messages_total);
	COUNTER("presence_relay_heartbeat_batches_total",
			"Batched heartbeat queries completed.",
			relay_metrics.heartbeat_batches_total);
	COUNTER("presence_relay_session_errors_total",
			"Sockets closed (1011) because presence.connect refused them.",
			relay_metrics.session_errors_total);
	COUNTER("presence_relay_disconnects_dropped_total",
			"Closed sockets whose session could not be ended (memory, or over the bound kept while the link was down).",
			relay_metrics.disconnects_dropped_total);
	LABELLED("presence_relay_notifications_ignored_total",
			 "Notifications not forwarded: sent by another backend than the presence worker, or not of the documented shape.",
			 "reason", "sender", u64(a, relay_metrics.notifications_ignored_sender),
			 "malformed", u64(b, relay_metrics.notifications_ignored_malformed));
	COUNTER("presence_relay_worker_pid_reads_total",
			"Times presence.stats().worker_pid was read.",
			relay_metrics.worker_pid_reads_total);
	LABELLED("presence_relay_refused_total",
			 "WebSocket upgrades refused by a limit (HTTP 429 or 503) or for a subprotocol other than presence (400).",
			 "limit", "max-sessions-per-user", u64(a, relay_metrics.refused_per_user),
			 "max-connections-per-ip", u64(b, relay_metrics.refused_per_ip),
			 "max-connections", u64(c, relay_metrics.refused_max_connections),
			 "subprotocol", u64(d, relay_metrics.refused_subprotocol));
	COUNTER("presence_relay_messages_rate_limited_total",
			"Client messages ignored over --message-rate.",
			relay_metrics.messages_rate_limited_total);
	COUNTER("presence_relay_rate_limit_closes_total",
			"Clients closed (1008) for sending persistently over --message-rate.",
			relay_metrics.rate_limit_closes_total);
	COUNTER("presence_relay_send_timeouts_total",
			"Clients closed (1008) whose state did not go out within --send-timeout.",
			relay_metrics.send_timeouts_total);
	LABELLED("presence_relay_tokens_total",
			 "Token lifetimes: sockets closed (4001) at expiry, tokens refreshed in a message, refreshes refused.",
			 "event", "expired", u64(a, relay_metrics.tokens_expired_total),
			 "refreshed", u64(b, relay_metrics.tokens_refreshed_total),
			 "refused", u64(c, relay_metrics.tokens_refused_total));
	COUNTER("presence_relay_wake_batches_total",
			"Small heartbeat queries for sockets coming back to active.",
			relay_metrics.wake_batches_total);
	COUNTER("presence_relay_visibility_batches_total",
			"Batched presence.set_visible() queries.",
			relay_metrics.visibility_batches_total);
	COUNTER("presence_relay_status_message_batches_total",
			"Batched presence.set_status_message() queries.",
			relay_metrics.status_message_batches_total);
	jbuf_printf(out,
				"# HELP presence_relay_channels Channels some client joins or watches.\n"
				"# TYPE presence_relay_channels gauge\n"
				"presence_relay_channels %d\n"
				"# HELP presence_relay_subscriptions Channels watched, summed over clients.\n"
				"# TYPE presence_relay_subscriptions gauge\n"
				"presence_relay_subscriptions %d\n",
				relay_metrics.channels, relay_metrics.subscriptions);
	LABELLED("presence_relay_membership_batches_total",
			 "Batched presence.join(), leave() and update() queries of the relay's sockets.",
			 "call", "join", u64(a, relay_metrics.join_batches_total[1]),
			 "leave", u64(b, relay_metrics.join_batches_total[0]),
			 "update", u64(c, relay_metrics.join_batches_total[2]));
	COUNTER("presence_relay_channel_states_total",
			"presence.members() queries for channel states.",
			relay_metrics.channel_states_total);
	COUNTER("presence_relay_channel_errors_total",
			"Error frames answering channel messages.",
			relay_metrics.channel_errors_total);
	COUNTER("presence_relay_channel_forbidden_total",
			"Channel messages refused by the token's channels claim.",
			relay_metrics.channel_forbidden_total);
	COUNTER("presence_relay_diffs_total",
			"Diff frames made for large channels (each sent to every watcher that has the one before).",
			relay_metrics.diffs_total);
	COUNTER("presence_relay_diff_catch_ups_total",
			"Diff frames made for large channels' watchers that fell behind (one for all those at the same point).",
			relay_metrics.catch_ups_total);
	COUNTER("presence_relay_seq_gaps_total",
			"Times a notification's seq did not follow the last one: states read again.",
			relay_metrics.seq_gaps_total);

	jbuf_printf(out,
					  "# HELP presence_relay_notification_send_delay_seconds "
					  "From a notification reaching the relay to its frame "
					  "being written to a client.\n"
					  "# TYPE presence_relay_notification_send_delay_seconds histogram\n");
	for (i = 0; i <= LWS_ARRAY_SIZE(bounds); i++)
	{
		cumulative += buckets[i];
		if (i < LWS_ARRAY_SIZE(bounds))
			jbuf_printf(out, "presence_relay_notification_send_delay_seconds_bucket"
						"{le=\"%g\"} %" PRIu64 "\n",
						(double) bounds[i] / 1e6, cumulative);
		else
			jbuf_printf(out, "presence_relay_notification_send_delay_seconds_bucket"
						"{le=\"+Inf\"} %" PRIu64 "\n", cumulative);
	}
	jbuf_printf(out, "presence_relay_notification_send_delay_seconds_sum %.6f\n"
				"presence_relay_notification_send_delay_seconds_count %" PRIu64 "\n",
				(double) delay_sum / 1e6, delay_count);
}
