# domi — PostgreSQL extension, built with PGXS.
#
#   make && sudo make install        build and install into pg_config's PostgreSQL
#   make installcheck                pg_regress against a running server
#   make prove_installcheck          TAP tests (they start their own servers)
#
# The whole suite, with its own throwaway cluster: scripts/test (see README.md).

EXTENSION = domi
EXTVERSION = 0.3.0

MODULE_big = domi
OBJS = \
	src/domi.o \
	src/tenant.o \
	src/tenant_session.o \
	src/crypto.o \
	src/random.o \
	src/rls.o \
	src/owner_spi.o \
	src/rootkey.o \
	src/keyring.o \
	src/keyring_sql.o \
	src/rekey.o \
	src/retire.o \
	src/firstkey.o \
	src/tenancy.o \
	src/tenancy_config.o \
	src/tenancy_lookup.o \
	src/tenancy_bootstrap.o \
	src/guard.o \
	src/guard_registry.o \
	src/guard_triggers.o \
	src/guard_self.o \
	src/rls_guard.o \
	src/citus.o \
	src/sync.o \
	src/sync_stamp.o \
	src/sync_merge.o \
	src/sync_feed.o

# Migration lineage (src/lineage*.c)
OBJS += \
	src/lineage.o \
	src/lineage_util.o \
	src/lineage_drizzle.o \
	src/lineage_drizzle_snapshots.o \
	src/lineage_drizzle_custom.o \
	src/lineage_drizzle_database.o \
	src/lineage_journal.o \
	src/lineage_snapshot.o \
	src/lineage_snapshot_diff.o \
	src/lineage_findings.o \
	src/lineage_prisma.o

# Schema truth: the DDL ledger (src/ledger*.c)
OBJS += \
	src/ledger.o \
	src/ledger_redact.o \
	src/ledger_lineage.o
src/ledger.o src/ledger_redact.o: src/ledger.h
src/ledger_lineage.o src/lineage.o: src/ledger_lineage.h src/lineage.h

DATA = $(wildcard sql/domi--*.sql)

TESTS = $(sort $(wildcard test/sql/*.sql))
REGRESS = $(patsubst test/sql/%.sql,%,$(TESTS))
REGRESS_OPTS = --inputdir=test --load-extension=$(EXTENSION)

SHLIB_LINK += -lsodium

EXTRA_CLEAN = build
EXTRA_CLEAN += client/domi-lineage

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The internal headers of the concerns split over several files (after the
# include, so that "all" stays the default goal).
src/rootkey.o src/keyring.o src/keyring_sql.o src/rekey.o src/retire.o src/firstkey.o: \
	src/keyring.h src/keyring_common.h src/rootkey.h
src/keyring.o src/keyring_sql.o: src/keyring_internal.h
src/guard.o src/guard_registry.o src/guard_triggers.o src/guard_self.o: src/guard.h src/guard_internal.h
src/tenancy.o src/tenancy_config.o src/tenancy_lookup.o src/tenancy_bootstrap.o: src/tenancy.h

# The client domi-lineage (libpq), next to the extension: PGXS builds one
# MODULE_big or one PROGRAM per Makefile, so it has rules of its own.
# "make" leaves it at client/domi-lineage; "make install" puts it into
# pg_config --bindir.
LINEAGE_OBJS = $(filter src/lineage%.o,$(OBJS))
$(LINEAGE_OBJS): src/lineage.h src/lineage_checks.h
$(filter src/lineage_drizzle%.o,$(OBJS)): src/lineage_drizzle.h

LINEAGE_CLIENT = client/domi-lineage
all: $(LINEAGE_CLIENT)
$(LINEAGE_CLIENT): client/domi-lineage.c
	$(CC) $(CFLAGS) $(PG_CFLAGS) -I$(shell $(PG_CONFIG) --includedir) -o $@ $< \
		-L$(shell $(PG_CONFIG) --libdir) -lpq
install: install-lineage-client
.PHONY: install-lineage-client
install-lineage-client: $(LINEAGE_CLIENT)
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) $(LINEAGE_CLIENT) '$(DESTDIR)$(bindir)/domi-lineage'

# pg_config --bindir is not on PATH on Debian (/usr/lib/postgresql/15/bin):
# "make install-lineage-link" adds a symbolic link to it in a folder that
# is, /usr/local/bin unless LINEAGE_LINK_DIR says otherwise.
LINEAGE_LINK_DIR ?= /usr/local/bin
.PHONY: install-lineage-link
install-lineage-link: install-lineage-client
	$(MKDIR_P) '$(DESTDIR)$(LINEAGE_LINK_DIR)'
	ln -sf '$(bindir)/domi-lineage' '$(DESTDIR)$(LINEAGE_LINK_DIR)/domi-lineage'

.PHONY: prove_installcheck
prove_installcheck:
	rm -rf $(CURDIR)/tmp_check
	cd $(srcdir) && TESTDIR='$(CURDIR)' PATH="$(bindir):$$PATH" PGPORT='6$(DEF_PGPORT)' \
		PG_REGRESS='$(top_builddir)/src/test/regress/pg_regress' \
		$(PROVE) -I $(top_builddir)/src/test/perl -I test/t $(PG_PROVE_FLAGS) $(PROVE_FLAGS) \
		$(if $(PROVE_TESTS),$(PROVE_TESTS),test/t/*.pl)
