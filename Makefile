# cocod — plain GNU make.  `make` builds build/cocod; `make SAN=1` builds an
# ASan+UBSan copy under build/san/; `make WERROR=1` turns warnings into
# errors (CI); `make check` builds and runs the unit tests.

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
GIT_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
PREFIX ?= /usr/local
DESTDIR ?=
BUILD ?= build

CC ?= cc
PKGS := libuv openssl sqlite3 lua5.4 libvirt jansson jose yaml-0.1
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS := $(shell pkg-config --libs $(PKGS))
# Debian's http-parser ships no .pc file; use it when present, else -l.
HTTP_PARSER_LIBS := $(shell pkg-config --libs http-parser 2>/dev/null || echo -lhttp_parser)

WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wmissing-prototypes \
	-Wstrict-prototypes -Wpointer-arith -Wcast-qual -Wwrite-strings \
	-Wundef -Wvla -Wnull-dereference -Wimplicit-fallthrough \
	-Wno-unused-parameter
ifeq ($(WERROR),1)
WARN += -Werror
endif

OPT ?= -O2 -g
CFLAGS_ALL := -std=gnu11 $(OPT) $(WARN) -D_GNU_SOURCE \
	-DCOCOD_VERSION='"$(VERSION)"' -DCOCOD_COMMIT='"$(GIT_COMMIT)"' \
	-fstack-protector-strong -fPIE -MMD -MP \
	-iquote core -iquote tee -iquote lua $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL := -pie -Wl,-z,relro,-z,now $(LDFLAGS)
LIBS := $(PKG_LIBS) $(HTTP_PARSER_LIBS) -lm

ifeq ($(SAN),1)
BUILD := build/san
CFLAGS_ALL += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS_ALL += -fsanitize=address,undefined
endif

LIB_SRCS := $(filter-out core/main.c,$(wildcard core/*.c tee/*.c lua/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(BUILD)/core/main.o
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all unit check fmt fmt-check install clean
all: $(BUILD)/cocod

$(BUILD)/cocod: $(MAIN_OBJ) $(BUILD)/libcocod.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

$(BUILD)/libcocod.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libcocod.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $< $(BUILD)/libcocod.a $(LIBS) -lcmocka

unit: $(UNIT_BINS) $(BUILD)/cocod

check: unit
	@tests/run-unit.sh $(BUILD)

fmt:
	clang-format -i $(wildcard core/*.[ch] tee/*.[ch] lua/*.[ch] tests/unit/*.[ch])

fmt-check:
	clang-format --dry-run --Werror $(wildcard core/*.[ch] tee/*.[ch] lua/*.[ch] tests/unit/*.[ch])

install: $(BUILD)/cocod
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/systemd/system \
		$(DESTDIR)/etc/cocod
	install -m 0755 $(BUILD)/cocod $(DESTDIR)$(PREFIX)/bin/cocod
	sed 's|@BINDIR@|$(PREFIX)/bin|' packaging/cocod.service.in \
		> $(DESTDIR)$(PREFIX)/lib/systemd/system/cocod.service
	test -e $(DESTDIR)/etc/cocod/cocod.toml || \
		install -m 0644 packaging/cocod.toml $(DESTDIR)/etc/cocod/cocod.toml

clean:
	rm -rf build

-include $(LIB_OBJS:.o=.d) $(MAIN_OBJ:.o=.d)
