# Top-level build.  Every module folder's *.c goes into one static library;
# tools link it; each tests/unit/test-*.c is a cmocka program; every
# executable tests/{interop,e2e,bad,crash}/*.sh is a shell test.  New files
# are picked up without editing this file.
#
#   make            build everything (V=1 for full commands)
#   make check      install missing Debian packages (as root), build, run all tests
#   make check SANITIZE=1   the same with ASan + UBSan (separate build folder)
#   make demo       build, then run the demo on an embedded default
#   make bench      run the benchmarks in bench/
#   make fuzz       build libFuzzer targets with clang and run each FUZZ_SECONDS

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
LDLIBS  := -lpthread -lz -lcrypto -laio
TEST_LDLIBS := -lcmocka -lnbd

ifeq ($(SANITIZE),1)
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

.DEFAULT_GOAL := all
MODULES := common vhd passthrough scsi vmbus storvsp vss backup nbd vmm-mini
# MODULE/main.c is a program's entry point, never in the library:
# vmm-mini/main.c -> $(BUILD)/bin/vmm-mini (bin/, because $(BUILD)/vmm-mini/
# is the folder of that module's objects).
MOD_SRCS := $(foreach m,$(MODULES),$(wildcard $(m)/*.c))
PROG_SRCS := $(filter %/main.c,$(MOD_SRCS))
PROGS    := $(PROG_SRCS:%/main.c=$(BUILD)/bin/%)
LIB_SRCS := $(filter-out $(PROG_SRCS),$(MOD_SRCS))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB      := $(BUILD)/libstack.a

# ---- vmm-mini: program and built-in guest (branch vmm) ------------------
# A minimal stand-in for the generic freestanding rule of branch "build"
# (MODULE/guest/*.c); same file names, symbols and flags, so that merging
# "build" replaces this block by its own:
#   vmm-mini/guest/*.c  -> $(BUILD)/vmm-mini/guest.bin (flat, linked at
#                          1 MiB by scripts/freestanding.ld), embedded by
#                          $(BUILD)/vmm-mini/guest-blob.o as
#                          vmm_mini_guest_start/_end (in the library)
FREESTANDING_CFLAGS := -std=gnu11 -ffreestanding -fno-pic -fno-pie \
	-mno-red-zone -mgeneral-regs-only -nostdlib -fno-stack-protector \
	-fno-builtin -fno-asynchronous-unwind-tables -O2 -g $(WARN)
FREESTANDING_LDFLAGS := -nostdlib -static -no-pie -Wl,--build-id=none \
	-Wl,-z,noexecstack -Wl,--no-warn-rwx-segments -Wl,-T,scripts/freestanding.ld
VMM_GUEST_SRCS := $(wildcard vmm-mini/guest/*.c)
VMM_GUEST_OBJS := $(VMM_GUEST_SRCS:%.c=$(BUILD)/%.o)
LIB_OBJS  += $(BUILD)/vmm-mini/guest-blob.o

$(VMM_GUEST_OBJS): $(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC (fs) $<")
	$(Q)$(CC) -I. -Icommon $(FREESTANDING_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/vmm-mini/guest.elf: $(VMM_GUEST_OBJS) scripts/freestanding.ld
	@$(if $(Q),echo "  LD (fs) $@")
	$(Q)$(CC) $(FREESTANDING_CFLAGS) $(FREESTANDING_LDFLAGS) -o $@ $(VMM_GUEST_OBJS)

$(BUILD)/vmm-mini/guest.bin: $(BUILD)/vmm-mini/guest.elf
	@$(if $(Q),echo "  OBJCOPY $@")
	$(Q)objcopy -O binary $< $@

$(BUILD)/vmm-mini/guest-blob.o: $(BUILD)/vmm-mini/guest.bin scripts/guest-blob.S
	@$(if $(Q),echo "  AS      $@")
	$(Q)$(CC) -c -o $@ -DBLOB_FILE='"$<"' -DBLOB_NAME=vmm_mini_guest scripts/guest-blob.S
# ---- end vmm-mini --------------------------------------------------------

TOOL_SRCS := $(wildcard tools/vhdtool/*.c)
TOOL_OBJS := $(TOOL_SRCS:%.c=$(BUILD)/%.o)
VHDTOOL   := $(BUILD)/vhdtool

UNIT_SRCS := $(wildcard tests/unit/test-*.c)
UNIT_HELPER_SRCS := $(filter-out tests/unit/test-%,$(wildcard tests/unit/*.c))
UNIT_HELPER_OBJS := $(UNIT_HELPER_SRCS:%.c=$(BUILD)/%.o)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
HELPER_SRCS := $(wildcard tests/helpers/*.c)
HELPER_BINS := $(HELPER_SRCS:tests/helpers/%.c=$(BUILD)/tests/helpers/%)
SHELL_TESTS := $(sort $(wildcard tests/interop/*.sh tests/e2e/*.sh tests/bad/*.sh tests/crash/*.sh))

.PHONY: all check demo bench fuzz clean deps test
.SECONDARY:
all: $(VHDTOOL) $(PROGS) $(UNIT_BINS) $(HELPER_BINS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJS)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

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
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(UNIT_HELPER_OBJS) $(LIB) $(TEST_LDLIBS) $(LDLIBS)

$(BUILD)/tests/helpers/%: $(BUILD)/tests/helpers/%.o $(UNIT_HELPER_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(UNIT_HELPER_OBJS) $(LIB) $(TEST_LDLIBS) $(LDLIBS)

deps:
	$(Q)scripts/deps.sh

# Unit tests first (fast), then shell tests.  scripts/run-tests.sh prints
# one line per test and a closing "N passed, N failed, N skipped".
check: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)BUILD=$(BUILD) VHDTOOL=$(abspath $(VHDTOOL)) scripts/run-tests.sh $(UNIT_BINS) $(SHELL_TESTS)

test: all
	$(Q)BUILD=$(BUILD) VHDTOOL=$(abspath $(VHDTOOL)) scripts/run-tests.sh $(UNIT_BINS) $(SHELL_TESTS)

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
build-fuzz/%: fuzz/%.c $(LIB_SRCS)
	@mkdir -p build-fuzz
	$(Q)clang -std=gnu11 -g -O1 $(CPPFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< $(LIB_SRCS) $(LDLIBS)
fuzz:
	$(Q)scripts/deps.sh clang libclang-rt-14-dev
	$(Q)$(MAKE) --no-print-directory $(FUZZ_BINS)
	$(Q)for f in $(FUZZ_BINS); do n=$$(basename $$f); mkdir -p build-fuzz/corpus-$$n; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 build-fuzz/corpus-$$n fuzz/corpus/$$n || exit 1; done

clean:
	rm -rf build build-san build-fuzz

-include $(PROG_SRCS:%.c=$(BUILD)/%.d) $(filter-out %-blob.d,$(LIB_OBJS:.o=.d)) $(VMM_GUEST_OBJS:.o=.d) $(TOOL_OBJS:.o=.d) $(UNIT_BINS:$(BUILD)/tests/%=$(BUILD)/tests/unit/%.d)
