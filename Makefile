# cloud-network: build, test, install and packages.
#
#   make build | test          TypeScript build, test suite
#   make demo | dry-run        the main job on recorded metadata (namespace, root | dry run, no root)
#   make bundle                build/lib/{cloud-network,cnctl}.mjs: one self-contained file per binary
#   make install [DESTDIR=] [PREFIX=/usr/local]
#   make uninstall [DESTDIR=] [PREFIX=/usr/local]   (keeps the files under /etc)
#   make deb | rpm | dist      build/cloud-network_VERSION_all.deb, build/cloud-network-setup-VERSION-1.noarch.rpm,
#                              build/cloud-network-VERSION.tar.gz (release tarball with the bundles)
# See packaging/README.md.

VERSION := $(shell sed -n 's/^  "version": "\([^"]*\)".*/\1/p' package.json)

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib/cloud-network
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/cloud-network
SYSCONFDIR ?= /etc
NODE ?= /usr/bin/node
DESTDIR ?=

BUNDLES := build/lib/cloud-network.mjs build/lib/cnctl.mjs
# Empty in a release tarball (no src/): the shipped bundles are used as they are.
BUNDLE_INPUTS := $(shell find src -name '*.ts' 2>/dev/null) $(wildcard package-lock.json packaging/build.mjs)

DEB := build/cloud-network_$(VERSION)_all.deb
RPM := build/cloud-network-setup-$(VERSION)-1.noarch.rpm
DIST := build/cloud-network-$(VERSION).tar.gz

# Without Photon's/Fedora's systemd-rpm-macros (e.g. on Debian), use the stand-ins and skip the
# BuildRequires check.
RPM_COMPAT := $(if $(shell rpm --eval '%{?systemd_post:yes}' 2>/dev/null),,--nodeps --load $(CURDIR)/packaging/rpm/macros.systemd-compat)

.PHONY: build test demo dry-run bundle install uninstall deb rpm dist

node_modules: package.json package-lock.json
	npm ci
	touch node_modules

# Rebuilt only when a source changed, so that `make dry-run` as a user works after `sudo make demo`.
TS_SOURCES := $(shell find src -name '*.ts' 2>/dev/null) tsconfig.json tsconfig.build.json

build: dist/cli/cloud-network.js

dist/cli/cloud-network.js: node_modules $(TS_SOURCES)
	npm run build
	touch $@

# The whole suite; end-to-end tests need root (network namespaces). Test results also go to
# build/test-results-*.json, which .ci/run sums up.
test: node_modules
	npm test

# The main job on recorded EC2 metadata inside a throwaway network namespace (root).
demo: build
	@node scripts/run-ts.mjs scripts/demo.ts

# The same recorded instance as a dry run: no root, no cloud.
dry-run: build
	@bin/cloud-network --dry-run --fixture test/fixtures/ec2/three-enis

bundle: $(BUNDLES)

$(BUNDLES) &: $(BUNDLE_INPUTS)
	node packaging/build.mjs

install: $(BUNDLES)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR)/examples/networkd.conf.d \
		$(DESTDIR)$(SYSCONFDIR)/cloud-network $(DESTDIR)$(SYSCONFDIR)/iproute2/rt_protos.d
	install -m 0644 $(BUNDLES) $(DESTDIR)$(LIBDIR)/
	# V8's lite mode (no optimizing compiler) keeps the long-running daemon under 60 MB RSS at no
	# measurable cost for its light work (npm run bench, docs/performance.md). It cannot run
	# WebAssembly, which nothing here uses: --no-expose-wasm says so instead of V8 warning about it.
	printf '#!/bin/sh\nexec %s --lite-mode --no-expose-wasm %s/cloud-network.mjs "$$@"\n' '$(NODE)' '$(LIBDIR)' > $(DESTDIR)$(BINDIR)/cloud-network
	printf '#!/bin/sh\nexec %s %s/cnctl.mjs "$$@"\n' '$(NODE)' '$(LIBDIR)' > $(DESTDIR)$(BINDIR)/cnctl
	chmod 0755 $(DESTDIR)$(BINDIR)/cloud-network $(DESTDIR)$(BINDIR)/cnctl
	sed 's|@BINDIR@|$(BINDIR)|g' packaging/cloud-network.service > $(DESTDIR)$(UNITDIR)/cloud-network.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/cloud-network.service
	install -m 0644 packaging/cloud-network.sysusers $(DESTDIR)$(SYSUSERSDIR)/cloud-network.conf
	gzip -9n < docs/cloud-network.8 > $(DESTDIR)$(MANDIR)/man8/cloud-network.8.gz
	gzip -9n < docs/cnctl.1 > $(DESTDIR)$(MANDIR)/man1/cnctl.1.gz
	chmod 0644 $(DESTDIR)$(MANDIR)/man8/cloud-network.8.gz $(DESTDIR)$(MANDIR)/man1/cnctl.1.gz
	install -m 0644 build/THIRD-PARTY-NOTICES $(DESTDIR)$(DOCDIR)/THIRD-PARTY-NOTICES
	install -m 0644 packaging/networkd-cloud-network.conf $(DESTDIR)$(DOCDIR)/examples/networkd.conf.d/cloud-network.conf
	# An administrator's configuration is never overwritten.
	test -e $(DESTDIR)$(SYSCONFDIR)/cloud-network/cloud-network.toml || \
		install -m 0644 packaging/cloud-network.toml $(DESTDIR)$(SYSCONFDIR)/cloud-network/cloud-network.toml
	test -e $(DESTDIR)$(SYSCONFDIR)/iproute2/rt_protos.d/cloud-network.conf || \
		install -m 0644 packaging/cloud-network.rt_protos $(DESTDIR)$(SYSCONFDIR)/iproute2/rt_protos.d/cloud-network.conf

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/cloud-network $(DESTDIR)$(BINDIR)/cnctl \
		$(DESTDIR)$(LIBDIR)/cloud-network.mjs $(DESTDIR)$(LIBDIR)/cnctl.mjs \
		$(DESTDIR)$(UNITDIR)/cloud-network.service $(DESTDIR)$(SYSUSERSDIR)/cloud-network.conf \
		$(DESTDIR)$(MANDIR)/man8/cloud-network.8.gz $(DESTDIR)$(MANDIR)/man1/cnctl.1.gz \
		$(DESTDIR)$(DOCDIR)/THIRD-PARTY-NOTICES $(DESTDIR)$(DOCDIR)/examples/networkd.conf.d/cloud-network.conf
	rmdir $(DESTDIR)$(LIBDIR) $(DESTDIR)$(DOCDIR)/examples/networkd.conf.d $(DESTDIR)$(DOCDIR)/examples \
		$(DESTDIR)$(DOCDIR) 2>/dev/null || true

# Debian package: `make install` into a staging root plus packaging/deb/.
deb: $(BUNDLES)
	rm -rf build/deb $(DEB)
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/build/deb PREFIX=/usr
	install -m 0644 packaging/deb/copyright build/deb/usr/share/doc/cloud-network/copyright
	gzip -9n < packaging/deb/changelog > build/deb/usr/share/doc/cloud-network/changelog.gz
	chmod 0644 build/deb/usr/share/doc/cloud-network/changelog.gz
	install -d build/deb/DEBIAN
	cd build/deb && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' \
		| LC_ALL=C sort -z | xargs -0 md5sum > DEBIAN/md5sums
	sed -e 's/@VERSION@/$(VERSION)/' -e "s/@INSTALLED_SIZE@/$$(du -sk --exclude=DEBIAN build/deb | cut -f1)/" \
		packaging/deb/control > build/deb/DEBIAN/control
	chmod 0644 build/deb/DEBIAN/control build/deb/DEBIAN/md5sums
	install -m 0644 packaging/deb/conffiles build/deb/DEBIAN/conffiles
	install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm build/deb/DEBIAN/
	dpkg-deb --root-owner-group -Zxz --build build/deb $(DEB)

# Release tarball: sources of the install step plus the prebuilt bundles, so that building the
# RPM needs neither npm nor the network.
dist: $(BUNDLES)
	rm -rf build/cloud-network-$(VERSION) $(DIST)
	mkdir -p build/cloud-network-$(VERSION)/build
	cp -p --parents Makefile package.json docs/cloud-network.8 docs/cnctl.1 \
		packaging/build.mjs packaging/cloud-network.service packaging/cloud-network.toml \
		packaging/cloud-network.sysusers packaging/cloud-network.rt_protos \
		packaging/networkd-cloud-network.conf build/cloud-network-$(VERSION)/
	cp -pr build/lib build/THIRD-PARTY-NOTICES build/cloud-network-$(VERSION)/build/
	tar -C build --owner=0 --group=0 --sort=name -czf $(DIST) cloud-network-$(VERSION)
	rm -rf build/cloud-network-$(VERSION)

rpm: dist
	rm -rf build/rpm $(RPM)
	mkdir -p build/rpm/SOURCES
	cp $(DIST) build/rpm/SOURCES/
	cp packaging/cloud-network.sysusers build/rpm/SOURCES/cloud-network.sysusers
	rpmbuild -bb $(RPM_COMPAT) --define '_topdir $(CURDIR)/build/rpm' packaging/rpm/cloud-network-setup.spec
	cp build/rpm/RPMS/noarch/cloud-network-setup-$(VERSION)-1*.noarch.rpm $(RPM)
