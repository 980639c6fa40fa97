# Top-level build.  Sources are discovered; new files are picked up without
# editing this file:
#
#   MODULE/*.c          library code: each module folder's .c files (MODULES
#                       below) go into $(BUILD)/libstack.a, except main.c;
#   MODULE/main.c       a program's entry point, never in the library:
#                       vmm-mini/main.c -> $(BUILD)/bin/vmm-mini, linked with
#                       the library (bin/, because $(BUILD)/vmm-mini/ is the
#                       folder of that module's objects);
#   MODULE/guest/*.c    freestanding code (FREESTANDING_CFLAGS, no libc),
#   tests/*/guest/*.c   linked at 1 MiB (scripts/freestanding.ld) into a flat
#                       image $(BUILD)/MODULE/guest.bin, embedded by
#                       $(BUILD)/MODULE/guest-blob.o with symbols
#                       <MODULE>_guest_start/_end ('/' and '-' become '_');
#                       a module's blob goes into the library;
#   tools/vhdtool/*.c   the vhdtool program;
#   tests/unit/test-*.c a cmocka program each (tests/unit/*.c others are
#                       helpers linked into all of them);
#   tests/helpers/*.c   a helper program each, driven by shell tests;
#   tests/tools/*.c     a test-only tool each ($(BUILD)/tests/tools/NAME:
#                       s3probe, flaky-proxy), driven by shell tests;
#   tests/{interop,e2e,bad,crash}/*.sh  the executable ones are shell tests.
#
# Every object records its header dependencies (-MMD), so changing a header
# rebuilds whatever includes it.
#
#   make            build everything (V=1 for full commands)
#   make check      install missing Debian packages (as root), build, run all tests
#   make check SANITIZE=1   the same with ASan + UBSan (separate build folder)
#   make check TSAN=1       ThreadSanitizer build (build-tsan/), runs TSAN_TESTS:
#                   unit tests named *concurrency* or *nbd-io*, and every test
#                   whose source holds the marker "tsan-test" (in a comment)
#   make demo       build, then run the demo on an embedded default
#   make bench      run the benchmarks in bench/
#   make fuzz       build libFuzzer targets with clang and run each FUZZ_SECONDS
#   make install    programs, man pages, bash completion (PREFIX, DESTDIR);
#                   make uninstall removes them

CC      ?= gcc
ifeq ($(origin CC),default)
CC      := gcc
endif
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
WARN    := -Wall -Wextra -Werror -Wmissing-prototypes -Wno-unused-parameter \
	   -Wstrict-prototypes -Wformat=2 -Wwrite-strings -Wundef \
	   -Wold-style-definition -Wredundant-decls -Wvla -Wshadow
CPPFLAGS += -D_GNU_SOURCE -I. -Icommon
LDLIBS  := -lpthread -lz -lcrypto -laio -lrbd -lrados -lcurl
TEST_LDLIBS := -lcmocka -lnbd

ifeq ($(SANITIZE)$(TSAN),11)
$(error SANITIZE=1 and TSAN=1 cannot be combined: ASan and TSan exclude each other)
endif
ifeq ($(TSAN),1)
BUILD   := build-tsan
SANFLAGS := -fsanitize=thread
else ifeq ($(SANITIZE),1)
BUILD   := build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else
BUILD   := build
SANFLAGS :=
endif
ALL_CFLAGS := -std=gnu11 $(CFLAGS) $(WARN) $(SANFLAGS) -pthread -MMD -MP

ifeq ($(V),1)
Q :=
else
Q := @
endif

# `make` alone = `make all` (the version rule below would otherwise be the
# first target).
.DEFAULT_GOAL := all

MODULES := common vhd passthrough scsi iscsi vmbus storvsp vss backup nbd vmm-mini rbd s3
MOD_SRCS  := $(foreach m,$(MODULES),$(wildcard $(m)/*.c))
PROG_SRCS := $(filter %/main.c,$(MOD_SRCS))
PROGS     := $(PROG_SRCS:%/main.c=$(BUILD)/bin/%)
LIB_SRCS  := $(filter-out $(PROG_SRCS),$(MOD_SRCS))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB       := $(BUILD)/libstack.a

# Freestanding code: DIR/guest/*.c -> $(BUILD)/DIR/guest.bin -> guest-blob.o.
# The flags give code that needs nothing from the host: no libc, no
# position-independent code (it runs where the linker script puts it), no
# red zone and no SSE (an interrupt or a kernel-style guest could clobber
# them), no stack protector (it would need %fs set up).
FREESTANDING_CFLAGS := -std=gnu11 -ffreestanding -fno-pic -fno-pie \
	-mno-red-zone -mgeneral-regs-only -nostdlib -fno-stack-protector \
	-fno-builtin -fno-asynchronous-unwind-tables -O2 -g $(WARN)
FREESTANDING_LDFLAGS := -nostdlib -static -no-pie -Wl,--build-id=none \
	-Wl,-z,noexecstack -Wl,--no-warn-rwx-segments -Wl,-T,scripts/freestanding.ld
GUEST_SRCS  := $(wildcard $(addsuffix /guest/*.c,$(MODULES)) tests/*/guest/*.c)
GUEST_OBJS  := $(GUEST_SRCS:%.c=$(BUILD)/%.o)
GUEST_DIRS  := $(sort $(patsubst %/guest/,%,$(dir $(GUEST_SRCS))))
GUEST_BLOBS := $(GUEST_DIRS:%=$(BUILD)/%/guest-blob.o)
LIB_OBJS    += $(filter-out $(BUILD)/tests/%,$(GUEST_BLOBS))

# The version, from one place: the VERSION file, followed in a git checkout
# by `git describe` (commit, "-dirty" with uncommitted changes), e.g.
# "0.1.0 (git be3826d-dirty)".  `make VERSION=x` overrides it.  Only the
# programs' main.c get it (-DVERSION); they are recompiled when it changes.
VERSION ?= $(strip $(shell cat VERSION 2>/dev/null || echo unknown)$(shell \
	d=$$(git describe --tags --always --dirty 2>/dev/null) && echo " (git $$d)"))
VERSION_STAMP := $(BUILD)/version.stamp
$(shell mkdir -p $(BUILD) && echo '$(VERSION)' | cmp -s - $(VERSION_STAMP) || \
	echo '$(VERSION)' > $(VERSION_STAMP))
VERSION_OBJS := $(BUILD)/tools/vhdtool/main.o $(PROG_SRCS:%.c=$(BUILD)/%.o)
$(VERSION_OBJS): $(VERSION_STAMP)
$(VERSION_OBJS): CPPFLAGS += -DVERSION='"$(VERSION)"'

TOOL_SRCS := $(wildcard tools/vhdtool/*.c)
TOOL_OBJS := $(TOOL_SRCS:%.c=$(BUILD)/%.o)
VHDTOOL   := $(BUILD)/vhdtool

UNIT_SRCS := $(wildcard tests/unit/test-*.c)
UNIT_OBJS := $(UNIT_SRCS:%.c=$(BUILD)/%.o)
UNIT_HELPER_SRCS := $(filter-out tests/unit/test-%,$(wildcard tests/unit/*.c))
UNIT_HELPER_OBJS := $(UNIT_HELPER_SRCS:%.c=$(BUILD)/%.o)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
HELPER_SRCS := $(wildcard tests/helpers/*.c)
HELPER_OBJS := $(HELPER_SRCS:%.c=$(BUILD)/%.o)
HELPER_BINS := $(HELPER_SRCS:tests/helpers/%.c=$(BUILD)/tests/helpers/%)
TESTTOOL_SRCS := $(wildcard tests/tools/*.c)
TESTTOOL_OBJS := $(TESTTOOL_SRCS:%.c=$(BUILD)/%.o)
TESTTOOL_BINS := $(TESTTOOL_SRCS:tests/tools/%.c=$(BUILD)/tests/tools/%)
SHELL_TESTS := $(sort $(wildcard tests/interop/*.sh tests/e2e/*.sh tests/bad/*.sh tests/crash/*.sh))

# Tests run by `make check TSAN=1`.  Modules may append (TSAN_TESTS += ...)
# or mark a test's source with "tsan-test" in a comment.
TSAN_MARKED := $(shell grep -l 'tsan-test' $(UNIT_SRCS) $(SHELL_TESTS) 2>/dev/null)
TSAN_TESTS  += $(filter %concurrency %nbd-io,$(UNIT_BINS)) \
	       $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(filter %.c,$(TSAN_MARKED))) \
	       $(filter %.sh,$(TSAN_MARKED))
ifeq ($(TSAN),1)
CHECK_TESTS = $(sort $(filter $(BUILD)/%,$(TSAN_TESTS))) \
	       $(sort $(filter-out $(BUILD)/%,$(TSAN_TESTS)))
else
CHECK_TESTS = $(UNIT_BINS) $(SHELL_TESTS)
endif

.PHONY: all check demo bench fuzz clean deps test install uninstall
.SECONDARY:
all: $(VHDTOOL) $(PROGS) $(UNIT_BINS) $(HELPER_BINS) $(TESTTOOL_BINS)

# Unit tests that link a test blob name it here.
$(BUILD)/tests/test-fs-freestanding: $(BUILD)/tests/freestanding/guest-blob.o

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

# The library is rebuilt when its list of objects changes, not only when an
# object does (a removed or renamed source must leave the archive).
LIB_LIST := $(BUILD)/libstack.list
$(shell mkdir -p $(BUILD) && echo '$(LIB_OBJS)' | cmp -s - $(LIB_LIST) || \
	echo '$(LIB_OBJS)' > $(LIB_LIST))
$(LIB): $(LIB_OBJS) $(LIB_LIST)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $(LIB_OBJS)

$(VHDTOOL): $(TOOL_OBJS) $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $(TOOL_OBJS) $(LIB) $(LDLIBS)

$(BUILD)/bin/%: $(BUILD)/%/main.o $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(UNIT_HELPER_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(filter %-blob.o,$^) $(UNIT_HELPER_OBJS) $(LIB) $(TEST_LDLIBS) $(LDLIBS)

$(BUILD)/tests/helpers/%: $(BUILD)/tests/helpers/%.o $(UNIT_HELPER_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(UNIT_HELPER_OBJS) $(LIB) $(TEST_LDLIBS) $(LDLIBS)

$(BUILD)/tests/tools/%: $(BUILD)/tests/tools/%.o $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# Freestanding objects: a static pattern rule, so it wins over $(BUILD)/%.o.
# Only the project's include paths: no _GNU_SOURCE, no sanitizers.
$(GUEST_OBJS): $(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC (fs) $<")
	$(Q)$(CC) -I. -Icommon $(FREESTANDING_CFLAGS) -MMD -MP -c -o $@ $<

define guest_elf_rule
$(BUILD)/$(1)/guest.elf: $(filter $(BUILD)/$(1)/guest/%,$(GUEST_OBJS)) scripts/freestanding.ld
	@$$(if $(Q),echo "  LD (fs) $$@")
	$(Q)$(CC) $(FREESTANDING_CFLAGS) $(FREESTANDING_LDFLAGS) -o $$@ $$(filter %.o,$$^)
endef
$(foreach d,$(GUEST_DIRS),$(eval $(call guest_elf_rule,$(d))))

$(BUILD)/%/guest.bin: $(BUILD)/%/guest.elf
	@$(if $(Q),echo "  OBJCOPY $@")
	$(Q)objcopy -O binary $< $@

# The flat image as read-only data between <name>_guest_start and _end.
$(BUILD)/%/guest-blob.o: $(BUILD)/%/guest.bin scripts/guest-blob.S
	@$(if $(Q),echo "  AS      $@")
	$(Q)$(CC) -c -o $@ -DBLOB_FILE='"$<"' \
	  -DBLOB_NAME=$(subst -,_,$(subst /,_,$*))_guest scripts/guest-blob.S

deps:
	$(Q)scripts/deps.sh

# Unit tests first (fast), then shell tests.  scripts/run-tests.sh prints
# one line per test and a closing "N passed, N failed, N skipped".
# With TSAN=1 only TSAN_TESTS run.
check: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)BUILD=$(BUILD) VHDTOOL=$(abspath $(VHDTOOL)) scripts/run-tests.sh $(CHECK_TESTS)

test: all
	$(Q)BUILD=$(BUILD) VHDTOOL=$(abspath $(VHDTOOL)) scripts/run-tests.sh $(CHECK_TESTS)

demo: deps
	$(Q)$(MAKE) --no-print-directory $(VHDTOOL) $(PROGS)
	$(Q)VHDTOOL=$(abspath $(VHDTOOL)) VMM=$(abspath $(BUILD)/bin/vmm-mini) scripts/demo.sh

bench:
	$(Q)scripts/deps.sh bc
	$(Q)$(MAKE) --no-print-directory all
	$(Q)for b in bench/*.sh; do VHDTOOL=$(abspath $(VHDTOOL)) BUILD=$(BUILD) $$b || exit 1; done

FUZZ_SECONDS ?= 60
FUZZ_SRCS := $(wildcard fuzz/fuzz-*.c)
FUZZ_BINS := $(FUZZ_SRCS:fuzz/%.c=build-fuzz/%)
FUZZ_OBJS := $(FUZZ_SRCS:%.c=build-fuzz/obj/%.o) $(LIB_SRCS:%.c=build-fuzz/obj/%.o)
FUZZ_CFLAGS := -std=gnu11 -g -O1 -fsanitize=address,undefined
build-fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(Q)clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(CPPFLAGS) -MMD -MP -c -o $@ $<
# The library's embedded guest blobs are gcc-built objects, linked as they are.
build-fuzz/%: build-fuzz/obj/fuzz/%.o $(filter-out build-fuzz/obj/fuzz/%,$(FUZZ_OBJS)) \
	      $(filter-out $(BUILD)/tests/%,$(GUEST_BLOBS))
	$(Q)clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)
fuzz:
	$(Q)scripts/deps.sh clang libclang-rt-14-dev
	$(Q)$(MAKE) --no-print-directory $(FUZZ_BINS)
	$(Q)for f in $(FUZZ_BINS); do n=$$(basename $$f); mkdir -p build-fuzz/corpus-$$n; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 build-fuzz/corpus-$$n fuzz/corpus/$$n || exit 1; done

# make install [PREFIX=/usr/local] [DESTDIR=]: the programs, their man pages
# (docs/man/PROGRAM.1, written by hand), vhdtool's bash completion and the
# example systemd units of contrib/systemd (ExecStart pointing at BINDIR;
# installed, not enabled).
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
UNITS := $(wildcard contrib/systemd/*.socket contrib/systemd/*.service contrib/systemd/*.timer)
INSTALL ?= install
MAN_PAGES := $(wildcard docs/man/*.1)
INSTALLED := $(DESTDIR)$(BINDIR)/vhdtool $(PROGS:$(BUILD)/bin/%=$(DESTDIR)$(BINDIR)/%) \
	$(MAN_PAGES:docs/man/%=$(DESTDIR)$(MANDIR)/man1/%) \
	$(DESTDIR)$(BASHCOMPDIR)/vhdtool \
	$(UNITS:contrib/systemd/%=$(DESTDIR)$(SYSTEMDUNITDIR)/%)

install: $(VHDTOOL) $(PROGS)
	$(Q)$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR)
	$(Q)$(INSTALL) -m 0755 $(VHDTOOL) $(PROGS) $(DESTDIR)$(BINDIR)/
	$(Q)$(INSTALL) -m 0644 $(MAN_PAGES) $(DESTDIR)$(MANDIR)/man1/
	$(Q)$(INSTALL) -m 0644 contrib/bash-completion/vhdtool $(DESTDIR)$(BASHCOMPDIR)/vhdtool
	$(Q)$(INSTALL) -d $(DESTDIR)$(SYSTEMDUNITDIR)
	$(Q)for u in $(UNITS); do sed 's|/usr/local/bin/|$(BINDIR)/|g' $$u > $(DESTDIR)$(SYSTEMDUNITDIR)/$$(basename $$u) && \
	  chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$(basename $$u) || exit 1; done

uninstall:
	$(Q)rm -f $(INSTALLED)

clean:
	rm -rf build build-san build-tsan build-fuzz

# Header dependencies of every object (guest blobs are assembled from a
# .bin, whose own objects carry theirs).
-include $(patsubst %.o,%.d,$(filter-out %-blob.o,$(LIB_OBJS)) $(PROGS:$(BUILD)/bin/%=$(BUILD)/%/main.o) \
	$(GUEST_OBJS) $(TOOL_OBJS) $(UNIT_OBJS) $(UNIT_HELPER_OBJS) $(HELPER_OBJS) $(TESTTOOL_OBJS) $(FUZZ_OBJS))
