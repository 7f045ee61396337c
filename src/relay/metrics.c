/*
 * metrics.c - counters for GET /metrics, in Prometheus text format 0.0.4.
 *
 * The loop is single-threaded, so plain integers do.  The histogram is the
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
	p += lws_snprintf(p, (size_t) (end - p), \
					  "# HELP " name " " help "\n# TYPE " name " counter\n" \
					  name " %" PRIu64 "\n", (uint64_t) (value))

/* Writes the metrics text into buf; returns its length. */
size_t
metrics_render(char *buf, size_t len)
{
	char	   *p = buf,
			   *end = buf + len;
	uint64_t	cumulative = 0;
	size_t		i;

	p += lws_snprintf(p, (size_t) (end - p),
					  "# HELP presence_relay_connections Open WebSocket connections.\n"
					  "# TYPE presence_relay_connections gauge\n"
					  "presence_relay_connections{kind=\"tracked\"} %d\n"
					  "presence_relay_connections{kind=\"watcher\"} %d\n"
					  "# HELP presence_relay_db_up Whether the database link is up.\n"
					  "# TYPE presence_relay_db_up gauge\n"
					  "presence_relay_db_up %d\n",
					  sessions_tracked(), feed_client_count() - sessions_tracked(),
					  dblink_is_up());
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

	p += lws_snprintf(p, (size_t) (end - p),
					  "# HELP presence_relay_notification_send_delay_seconds "
					  "From a notification reaching the relay to its frame "
					  "being written to a client.\n"
					  "# TYPE presence_relay_notification_send_delay_seconds histogram\n");
	for (i = 0; i <= LWS_ARRAY_SIZE(bounds); i++)
	{
		cumulative += buckets[i];
		if (i < LWS_ARRAY_SIZE(bounds))
			p += lws_snprintf(p, (size_t) (end - p),
							  "presence_relay_notification_send_delay_seconds_bucket"
							  "{le=\"%g\"} %" PRIu64 "\n",
							  (double) bounds[i] / 1e6, cumulative);
		else
			p += lws_snprintf(p, (size_t) (end - p),
							  "presence_relay_notification_send_delay_seconds_bucket"
							  "{le=\"+Inf\"} %" PRIu64 "\n", cumulative);
	}
	p += lws_snprintf(p, (size_t) (end - p),
					  "presence_relay_notification_send_delay_seconds_sum %.6f\n"
					  "presence_relay_notification_send_delay_seconds_count %" PRIu64 "\n",
					  (double) delay_sum / 1e6, delay_count);
	return (size_t) (p - buf);
}
