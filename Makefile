# presence: PGXS build of the extension, plus the bundled relay (src/relay).
#
#   make && sudo make install     build and install both
#   make installcheck             pg_regress, isolation and TAP suites, each
#                                 on its own throwaway preloaded cluster
#   ./scripts/test.sh             everything, as CI runs it

EXTENSION = presence
MODULE_big = presence
OBJS = \
	src/presence.o \
	src/registry.o \
	src/track.o \
	src/batch.o \
	src/status.o \
	src/wheel.o \
	src/sync.o \
	src/bound.o \
	src/sql_api.o \
	src/channels.o \
	src/membership.o \
	src/channel_api.o \
	src/channel_sync.o \
	src/message.o \
	src/message_api.o \
	src/persist.o \
	src/mirror_target.o \
	src/mirror_api.o \
	src/mirror.o \
	src/notify.o \
	src/worker.o \
	src/flusher.o \
	src/events.o
DATA = src/presence--1.0.sql src/presence--1.1.sql src/presence--1.0--1.1.sql
PGFILEDESC = "presence - who is online, tracked in shared memory"

PG_CPPFLAGS = -I$(srcdir)/src
# -Wextra on top of PostgreSQL's own flags, less unused-parameter, which
# every fmgr entry point and callback would trip.
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Werror

REGRESS = setup api validation visibility limits heartbeat_many channels mirror status_message privileges
REGRESS_OPTS = --temp-instance=./tmp_check --temp-config=$(srcdir)/test/presence.conf \
	--use-existing

ISOLATION = concurrent-connect notify-order user-limit concurrent-channels channel-notify
ISOLATION_OPTS = --inputdir=$(srcdir)/test/isolation \
	--temp-instance=./tmp_check_iso --temp-config=$(srcdir)/test/isolation/presence.conf \
	--use-existing

TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

EXTRA_CLEAN = test/tools/listen

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The tests run in the database the worker tracks: presence.database's
# default, which exists from initdb on, so pg_regress must not recreate it
# (--use-existing).  Set after PGXS, which sets its own.
CONTRIB_TESTDB = postgres
ISOLATION_TESTDB = postgres

# PGXS does not track header dependencies by itself.
$(OBJS): $(wildcard $(srcdir)/src/*.h)

# A LISTEN client the TAP tests and benchmarks use.
test/tools/listen: test/tools/listen.c
	$(CC) -Wall -Wextra -O2 -I$(includedir) -o $@ $< -L$(libdir) -lpq
all: test/tools/listen

# The relay is an ordinary program with its own Makefile.
ifneq ($(wildcard $(srcdir)/src/relay/Makefile),)
all: relay
install: install-relay
clean: clean-relay
.PHONY: relay install-relay clean-relay
relay:
	$(MAKE) -C $(srcdir)/src/relay PG_CONFIG=$(PG_CONFIG)
install-relay:
	$(MAKE) -C $(srcdir)/src/relay install PG_CONFIG=$(PG_CONFIG)
clean-relay:
	$(MAKE) -C $(srcdir)/src/relay clean
endif

# presence-relay as a systemd service, only when asked:
#   sudo make install-systemd        the unit where Debian keeps units, and
#                                    /etc/default/presence-relay (kept if present)
SYSTEMD_UNITDIR ?= $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)
# where `make install` put the relay (src/relay/Makefile: $(PREFIX)/bin)
RELAY_BINDIR ?= $(or $(PREFIX),/usr/local)/bin
.PHONY: install-systemd
install-systemd:
	install -d $(DESTDIR)$(SYSTEMD_UNITDIR) $(DESTDIR)/etc/default
	sed 's|@bindir@|$(RELAY_BINDIR)|g' $(srcdir)/contrib/presence-relay.service.in \
		> $(DESTDIR)$(SYSTEMD_UNITDIR)/presence-relay.service
	chmod 644 $(DESTDIR)$(SYSTEMD_UNITDIR)/presence-relay.service
	[ -e $(DESTDIR)/etc/default/presence-relay ] || \
		install -m 644 $(srcdir)/contrib/presence-relay.default $(DESTDIR)/etc/default/presence-relay
