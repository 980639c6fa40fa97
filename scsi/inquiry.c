/* INQUIRY: standard data and the vital product data pages 0x00, 0x80,
 * 0x83, 0xB0, 0xB1, 0xB2 (SPC-4 6.6, 7.8; SBC-3 6.6), from the disk's
 * identity and limits. */
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "scsi/scsi-int.h"

#define T10_VENDOR  "Msft    "          /* 8 bytes */
#define PRODUCT     "Virtual Disk    "  /* 16 bytes */
#define REVISION    "1.0 "              /* 4 bytes */
#define VPD_MAX     256

/* Standard INQUIRY data, 96 bytes. */
struct scsi_inq_std {
	uint8_t pdt;           /* PQ (7:5) | peripheral device type (4:0) */
	uint8_t rmb;           /* bit 7: removable medium */
	uint8_t version;       /* 0x06: SPC-4 */
	uint8_t format;        /* response data format 2 | HISUP (bit 4) */
	uint8_t add_len;       /* bytes after this one */
	uint8_t flags5;        /* SCCS, ACC, TPGS, 3PC, PROTECT */
	uint8_t flags6;        /* ENCSERV, MULTIP... */
	uint8_t flags7;        /* bit 1 CMDQUE */
	char vendor[8];        /* T10 vendor identification */
	char product[16];
	char revision[4];
	uint8_t vendor_spec[20];
	uint8_t flags56;
	uint8_t reserved57;
	uint8_t versions[8][2];/* version descriptors, big-endian */
	uint8_t reserved74[22];
} __attribute__((packed));

_Static_assert(sizeof(struct scsi_inq_std) == 96, "standard inquiry size");
_Static_assert(offsetof(struct scsi_inq_std, vendor) == 8, "vendor");
_Static_assert(offsetof(struct scsi_inq_std, product) == 16, "product");
_Static_assert(offsetof(struct scsi_inq_std, revision) == 32, "revision");
_Static_assert(offsetof(struct scsi_inq_std, versions) == 58, "versions");

static void inq_standard(struct scsi_task *tk, uint16_t alloc)
{
	struct scsi_inq_std d = {
		.pdt = tk->lun ? 0x00 : 0x7F,  /* disk; or no LUN here */
		.version = 0x06,
		.format = 0x02,
		.add_len = sizeof(d) - 5,
		.flags7 = 0x02,
	};

	memcpy(d.vendor, T10_VENDOR, 8);
	memcpy(d.product, PRODUCT, 16);
	memcpy(d.revision, REVISION, 4);
	util_put_be16(d.versions[0], 0x00C0);   /* SAM-4 */
	util_put_be16(d.versions[1], 0x0460);   /* SPC-4 */
	util_put_be16(d.versions[2], 0x04C0);   /* SBC-3 */
	scsi_task_data_in(tk, &d, sizeof(d), alloc);
}

static const uint8_t vpd_pages[] = { 0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2 };

static size_t vpd_00(const struct scsi_lun *l, uint8_t *p)
{
	memcpy(p + 4, vpd_pages, sizeof(vpd_pages));
	return 4 + sizeof(vpd_pages);
}

/* The id as 32 hex digits. */
static void id_hex(const struct scsi_lun *l, char *out)
{
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", l->bd->ident.id[i]);
}

/* Unit serial number: the disk's serial, or the id in hex. */
static size_t vpd_80(const struct scsi_lun *l, uint8_t *p)
{
	const char *s = l->bd->ident.serial;
	size_t n = strnlen(s, sizeof(l->bd->ident.serial));
	char hex[33];

	if (!n) {
		id_hex(l, hex);
		s = hex;
		n = 32;
	}
	memcpy(p + 4, s, n);
	return 4 + n;
}

/* Device identification: a T10 vendor designator (vendor + id in hex)
 * and an NAA-6 designator (Microsoft's OUI 00-22-48, then the id folded
 * to 100 bits), both for the logical unit. */
static size_t vpd_83(const struct scsi_lun *l, uint8_t *p)
{
	const uint8_t *id = l->bd->ident.id;
	uint8_t *d = p + 4;
	uint8_t v[12];

	d[0] = 0x02;                 /* code set: ASCII */
	d[1] = 0x01;                 /* association LU, type T10 vendor */
	d[3] = 8 + 32;
	memcpy(d + 4, T10_VENDOR, 8);
	id_hex(l, (char *)d + 12);   /* writes a NUL at d[44], overwritten */
	d += 4 + 8 + 32;
	for (int i = 0; i < 12; i++)
		v[i] = (uint8_t)(id[i] ^ (i < 4 ? id[12 + i] : 0));
	d[0] = 0x01;                 /* code set: binary */
	d[1] = 0x03;                 /* association LU, type NAA */
	d[2] = 0;
	d[3] = 16;
	d[4] = 0x60;                 /* NAA 6, OUI 0x002248 ... */
	d[5] = 0x02;
	d[6] = 0x24;
	d[7] = 0x80;                 /* ... OUI low nibble 8, VSID 0 */
	memcpy(d + 8, v, 12);
	d += 4 + 16;
	return (size_t)(d - p);
}

/* Block limits (page length 0x3C). */
static size_t vpd_b0(const struct scsi_lun *l, uint8_t *p)
{
	const struct bdev_limits *lim = &l->bd->limits;
	uint32_t bs = l->bs, opt = lim->opt_transfer;
	uint32_t caw = UTIL_MIN(SCSI_MAX_CAW_BLOCKS, SCSI_MAX_CAW_BYTES / bs);

	/* WSNZ 0: WRITE SAME with zero blocks runs to the end of the medium
	 * (within the maximum write same length). */
	p[5] = (uint8_t)UTIL_MIN(caw, 255u);             /* max CAW length */
	util_put_be16(p + 6, (uint16_t)(l->phys / bs));
	util_put_be32(p + 8, lim->max_transfer / bs);
	/* Linux wants the optimal size a multiple of the physical block,
	 * at least 4 KiB: report nothing otherwise. */
	if (opt < 4096 || opt % l->phys ||
	    (lim->max_transfer && opt > lim->max_transfer))
		opt = 0;
	util_put_be32(p + 12, opt / bs);
	if (scsi_lun_can_unmap(l)) {
		util_put_be32(p + 20, UINT32_MAX);
		util_put_be32(p + 24, SCSI_MAX_UNMAP_DESC);
		util_put_be32(p + 28, UTIL_MAX(lim->unmap_granularity / bs, 1u));
		util_put_be32(p + 32, 0x80000000u);      /* UGAVALID, align 0 */
	}
	util_put_be64(p + 36, SCSI_MAX_WS_BYTES / bs);
	return 64;
}

/* Block device characteristics: non-rotating medium. */
static size_t vpd_b1(const struct scsi_lun *l, uint8_t *p)
{
	util_put_be16(p + 4, 0x0001);
	return 64;
}

/* Logical block provisioning: UNMAP and WRITE SAME with UNMAP when the
 * disk can deallocate; LBPRZ when deallocated blocks read as zeros. */
static size_t vpd_b2(const struct scsi_lun *l, uint8_t *p)
{
	if (scsi_lun_can_unmap(l)) {
		p[5] = 0x80 | 0x40 | 0x20;               /* LBPU LBPWS LBPWS10 */
		if (l->bd->limits.unmap_zeroes)
			p[5] |= 0x04;                    /* LBPRZ = 1 */
		p[6] = 0x02;                             /* thin provisioned */
	}
	return 8;
}

static const struct {
	uint8_t page;
	size_t (*fill)(const struct scsi_lun *l, uint8_t *p);
} vpds[] = {
	{ 0x00, vpd_00 }, { 0x80, vpd_80 }, { 0x83, vpd_83 },
	{ 0xB0, vpd_b0 }, { 0xB1, vpd_b1 }, { 0xB2, vpd_b2 },
};

static void inq_vpd(struct scsi_task *tk, uint8_t page, uint16_t alloc)
{
	uint8_t p[VPD_MAX] = { 0 };
	size_t n;

	for (size_t i = 0; i < UTIL_ARRAY_SIZE(vpds); i++) {
		if (vpds[i].page != page)
			continue;
		n = vpds[i].fill(tk->lun, p);
		p[0] = 0x00;                             /* disk */
		p[1] = page;
		util_put_be16(p + 2, (uint16_t)(n - 4));
		scsi_task_data_in(tk, p, n, alloc);
		return;
	}
	scsi_fail_cdb(tk, 2, -1);
}

void scsi_h_inquiry(struct scsi_task *tk)
{
	const uint8_t *cdb = tk->cdb;
	uint16_t alloc = util_get_be16(cdb + 3);

	if (cdb[1] & 0xfe) {                 /* CMDDT, reserved */
		scsi_fail_cdb(tk, 1, (cdb[1] & 0x02) ? 1 : -1);
		return;
	}
	if (!(cdb[1] & 0x01)) {
		if (cdb[2]) {
			scsi_fail_cdb(tk, 2, -1);
			return;
		}
		inq_standard(tk, alloc);
		return;
	}
	if (!tk->lun) {
		scsi_fail(tk, SCSI_SK_ILLEGAL_REQUEST, 0x25, 0x00);
		return;
	}
	inq_vpd(tk, cdb[2], alloc);
}
