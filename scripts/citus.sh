# scripts/citus.sh — build Citus for domi's Citus suite.  Sourced by
# scripts/test after lib.sh, not run.
#
# The Citus source is never downloaded: it is the copy kept beside the
# repository in ../shared/citus (see its README.md).  It is built in the build
# tree and installed into the PostgreSQL that PG_CONFIG names, and the build is
# skipped when that installation already has citus.so of the same version.

CITUS_VERSION=13.2.2
CITUS_SHARED=$REPO/../shared/citus
CITUS_TARBALL=$CITUS_SHARED/citus-$CITUS_VERSION.tar.gz
CITUS_PATCH=$CITUS_SHARED/citus-pg15.18.patch

# Debian packages the Citus build needs (from ../shared/citus/README.md).
CITUS_APT_PACKAGES=(
	liblz4-dev
	libzstd-dev
	libkrb5-dev
	libselinux1-dev
	libpam0g-dev
	libssl-dev
	libxslt1-dev
	libreadline-dev
)

citus_installed_version() {
	local control
	control=$($PG_CONFIG --sharedir)/extension/citus.control
	[ -f "$($PG_CONFIG --pkglibdir)/citus.so" ] && [ -f "$control" ] || return 0
	sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" "$control"
}

citus_install() {
	local have
	have=$(citus_installed_version)
	# citus.control names the SQL version (13.2-1), not the release: compare
	# with what the tarball's control file says.
	if [ ! -f "$CITUS_TARBALL" ]; then
		echo "Citus source not found: $CITUS_TARBALL" >&2
		echo "(the Citus suite needs the shared folder ../shared/citus beside the repository)" >&2
		return 1
	fi
	local want
	want=$(tar -xzOf "$CITUS_TARBALL" "citus-$CITUS_VERSION/src/backend/distributed/citus.control" |
		sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p")
	if [ -n "$have" ] && [ "$have" = "$want" ]; then
		say "Citus $CITUS_VERSION ($have) already installed in $($PG_CONFIG --pkglibdir)"
		return 0
	fi
	APT_PACKAGES=("${CITUS_APT_PACKAGES[@]}")
	install_packages
	local src=$BUILD/citus-src
	say "building Citus $CITUS_VERSION in $src (a few minutes)"
	rm -rf "$src"
	mkdir -p "$src"
	tar -C "$src" -xzf "$CITUS_TARBALL"
	src=$src/citus-$CITUS_VERSION
	# Newer PostgreSQL 15 minor releases export have_createdb_privilege(),
	# which Citus 13.2.2 also defines as a static function.
	if grep -q have_createdb_privilege "$($PG_CONFIG --includedir-server)/commands/dbcommands.h"; then
		patch -d "$src" -p1 -s <"$CITUS_PATCH"
	fi
	(
		cd "$src"
		./configure -q --without-libcurl PG_CONFIG="$PG_CONFIG" >"$BUILD/citus-configure.log" 2>&1
		nice -n 10 make -s -j2 with_llvm=no >"$BUILD/citus-build.log" 2>&1
		as_root make -s with_llvm=no install >>"$BUILD/citus-build.log" 2>&1
	) || {
		tail -n 40 "$BUILD/citus-configure.log" "$BUILD/citus-build.log" >&2 || true
		echo "Citus build failed (logs in $BUILD)" >&2
		return 1
	}
	say "Citus $CITUS_VERSION installed into $($PG_CONFIG --pkglibdir)"
}
