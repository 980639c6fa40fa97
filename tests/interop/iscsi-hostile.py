#!/usr/bin/env python3
"""A hostile iSCSI initiator for test-iscsi-hostile.sh: raw-socket sessions
that send malformed PDUs, oversized segments, wrong sequence numbers, half
logins and vanish mid-transfer.  Each case checks what the target answered
(a Reject, a dropped connection, silence) and that a well-behaved session
on the side still works.  Usage: iscsi-hostile.py PORT IQN"""
import socket
import struct
import sys
import time

PORT, IQN = int(sys.argv[1]), sys.argv[2]
ISID = b'\x80\x00\x00\x00\x12\x34'


def conn():
    s = socket.create_connection(('127.0.0.1', PORT), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def pdu(op, flags, b2=0, b3=0, lun=b'\0' * 8, itt=1, w20=0, w24=0, w28=0,
        rest=b'\0' * 16, data=b'', dlen=None):
    n = len(data) if dlen is None else dlen
    h = struct.pack('>BBBBB', op, flags, b2, b3, 0) + n.to_bytes(3, 'big')
    h += lun + struct.pack('>IIII', itt, w20, w24, w28) + rest
    assert len(h) == 48
    return h + data + b'\0' * ((4 - len(data) % 4) % 4)


def recv_pdu(s):
    h = b''
    while len(h) < 48:
        d = s.recv(48 - len(h))
        if not d:
            return None
        h += d
    n = int.from_bytes(h[5:8], 'big')
    n += (4 - n % 4) % 4
    data = b''
    while len(data) < n:
        d = s.recv(n - len(data))
        if not d:
            return None
        data += d
    return h, data


def closed(s, t=5):
    """True when the target closes s (reading and discarding)."""
    s.settimeout(t)
    try:
        while True:
            d = s.recv(65536)
            if not d:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def login(s, discovery=False):
    keys = ['InitiatorName=iqn.2024-01.test:hostile',
            'SessionType=' + ('Discovery' if discovery else 'Normal'),
            'AuthMethod=None']
    if not discovery:
        keys.append('TargetName=' + IQN)
    data = '\0'.join(keys).encode() + b'\0'
    # CSG 0 -> NSG 1, transit
    s.sendall(pdu(0x43, 0x80 | 0 << 2 | 1, itt=0, w24=0, w28=0,
                  lun=ISID + b'\0\0', data=data))
    h, d = recv_pdu(s)
    assert h[0] == 0x23 and h[36] == 0, 'security stage refused: %r' % h[36:38]
    keys = ['HeaderDigest=None', 'DataDigest=None', 'InitialR2T=Yes',
            'ImmediateData=No', 'MaxRecvDataSegmentLength=65536',
            'MaxBurstLength=262144', 'FirstBurstLength=65536']
    data = '\0'.join(keys).encode() + b'\0'
    s.sendall(pdu(0x43, 0x80 | 1 << 2 | 3, itt=0, w24=0, w28=1,
                  lun=ISID + b'\0\0', data=data))
    h, d = recv_pdu(s)
    assert h[0] == 0x23 and h[36] == 0 and h[1] & 0x83 == 0x83, 'login failed'
    return struct.unpack('>I', h[24:28])[0] + 1   # ExpStatSN


def nop(s, cmdsn, itt=0x77):
    s.sendall(pdu(0x40, 0x80, itt=itt, w20=0xffffffff, w24=cmdsn, data=b'ping'))
    r = recv_pdu(s)
    assert r and r[0][0] == 0x20 and r[1][:4] == b'ping', 'no NOP-In'
    return r


def scsi_cmd(s, cmdsn, cdb, edtl, read=False, write=False, itt=5, final=True):
    flags = (0x80 if final else 0) | (0x40 if read else 0) | (0x20 if write else 0)
    rest = cdb.ljust(16, b'\0')
    s.sendall(pdu(0x01, flags, itt=itt, w20=edtl, w24=cmdsn, rest=rest))


def write10(lba, blocks):
    return struct.pack('>BBIBHB', 0x2A, 0, lba, 0, blocks, 0)


cases = []


def case(f):
    cases.append(f)
    return f


@case
def garbage_before_login():
    s = conn()
    s.sendall(b'\xff' * 48 + b'GET / HTTP/1.0\r\n\r\n')
    assert closed(s), 'garbage before login: not dropped'


@case
def half_login_times_out():
    s = conn()
    s.sendall(pdu(0x43, 0x81, lun=ISID + b'\0\0', dlen=100)[:30])
    t = time.time()
    assert closed(s, 10), 'half login: not dropped'
    assert time.time() - t < 8, 'half login: dropped too late'


@case
def trickled_login_times_out():
    s = conn()
    p = pdu(0x43, 0x81, lun=ISID + b'\0\0', data=b'InitiatorName=x\0' * 20)
    t = time.time()
    try:
        for b in p:
            s.send(bytes([b]))
            time.sleep(0.05)
    except OSError:
        pass
    assert closed(s, 10), 'trickled login: not dropped'
    assert time.time() - t < 8, 'trickled login: dropped too late'


@case
def bad_login_text():
    s = conn()
    s.sendall(pdu(0x43, 0x81, lun=ISID + b'\0\0', data=b'no equals sign here'))
    r = recv_pdu(s)
    assert r and r[0][0] == 0x23 and r[0][36] == 2, 'bad login text: no initiator error'
    assert closed(s), 'bad login text: not dropped'


@case
def wrong_target():
    s = conn()
    s.sendall(pdu(0x43, 0x81, lun=ISID + b'\0\0',
                  data=b'InitiatorName=iqn.x\0TargetName=iqn.nope\0AuthMethod=None\0'))
    r = recv_pdu(s)
    assert r and r[0][36:38] == b'\x02\x03', 'wrong target: not "not found"'


@case
def unknown_opcode_rejected():
    s = conn()
    sn = login(s)
    s.sendall(pdu(0x1c, 0x80, itt=9, w24=0))
    r = recv_pdu(s)
    assert r and r[0][0] == 0x3f and r[0][2] == 0x05, 'unknown opcode: no Reject'
    nop(s, 0)


@case
def oversized_segment_dropped():
    s = conn()
    login(s)
    s.sendall(pdu(0x00, 0x80, itt=3, w20=0xffffffff, dlen=8 << 20)[:48])
    r = recv_pdu(s)
    assert r and r[0][0] == 0x3f, 'oversized segment: no Reject'
    assert closed(s), 'oversized segment: not dropped'


@case
def cmdsn_out_of_window_ignored():
    s = conn()
    login(s)
    s.sendall(pdu(0x00, 0x80, itt=4, w20=0xffffffff, w24=100000))
    s.settimeout(1)
    try:
        r = recv_pdu(s)
        assert r is None, 'CmdSN far ahead: answered'
    except socket.timeout:
        pass
    s.settimeout(5)
    nop(s, 0)


def data_out(s, itt, ttt, datasn, offset, data, final=True):
    s.sendall(pdu(0x05, 0x80 if final else 0, itt=itt, w20=ttt,
                  rest=struct.pack('>III', 0, datasn, offset) + b'\0' * 4, data=data))


def r2t(s, itt):
    r = recv_pdu(s)
    assert r and r[0][0] == 0x31 and r[0][16:20] == itt.to_bytes(4, 'big'), 'no R2T'
    return int.from_bytes(r[0][20:24], 'big')


def response(s, itt):
    """The SCSI Response for itt: (status, sense bytes)."""
    r = recv_pdu(s)
    assert r and r[0][0] == 0x21 and r[0][16:20] == itt.to_bytes(4, 'big'), \
        'no SCSI Response: %r' % (r and r[0][:4])
    n = int.from_bytes(r[0][5:8], 'big')
    sense = r[1][2:2 + int.from_bytes(r[1][:2], 'big')] if n >= 2 else b''
    return r[0][3], sense


def protocol_crc_error(status, sense):
    """CHECK CONDITION, ABORTED COMMAND, PROTOCOL SERVICE CRC ERROR (RFC
    7143 11.4.7.2), the end of a task whose Data-Out DataSN was wrong."""
    return status == 2 and sense[2] & 0xf == 0xb and sense[12:14] == b'\x47\x05'


def read_blocks(s, cmdsn, lba, blocks, itt):
    scsi_cmd(s, cmdsn, struct.pack('>BBIBHB', 0x28, 0, lba, 0, blocks, 0),
             blocks * 512, read=True, itt=itt)
    data = b''
    while True:
        r = recv_pdu(s)
        assert r and r[0][0] == 0x25, 'no Data-In'
        data += r[1][:int.from_bytes(r[0][5:8], 'big')]
        if r[0][1] & 1:
            assert r[0][3] == 0, 'read failed'
            return data


@case
def bad_datasn_check_condition():
    # ERL 0: the write ends with CHECK CONDITION, nothing is written, the
    # connection goes on (a good write and a read on it after).
    s = conn()
    login(s)
    scsi_cmd(s, 0, b'\0' * 6, 0, itt=3)   # TEST UNIT READY: the unit attention
    response(s, 3)
    before = read_blocks(s, 1, 40, 8, itt=4)
    scsi_cmd(s, 2, write10(40, 8), 4096, write=True, itt=5)
    data_out(s, 5, r2t(s, 5), 7, 0, b'x' * 4096)
    st, sense = response(s, 5)
    assert protocol_crc_error(st, sense), 'DataSN 7: %d %r' % (st, sense[:14])
    assert read_blocks(s, 3, 40, 8, itt=6) == before, 'DataSN 7: data written'
    scsi_cmd(s, 4, write10(40, 8), 4096, write=True, itt=7)
    data_out(s, 7, r2t(s, 7), 0, 0, b'z' * 4096)
    assert response(s, 7)[0] == 0, 'good write after a bad DataSN failed'
    assert read_blocks(s, 5, 40, 8, itt=8) == b'z' * 4096, 'good write not read back'


@case
def repeated_datasn_check_condition():
    # Two Data-Outs both numbered 0: the second is out of order; the task
    # ends after the F bit, not before.
    s = conn()
    login(s)
    scsi_cmd(s, 0, write10(48, 8), 4096, write=True, itt=5)
    ttt = r2t(s, 5)
    data_out(s, 5, ttt, 0, 0, b'x' * 1024, final=False)
    data_out(s, 5, ttt, 0, 1024, b'x' * 1024, final=False)
    s.settimeout(0.5)
    try:
        assert recv_pdu(s) is None, 'answered before the F bit'
    except socket.timeout:
        pass
    s.settimeout(5)
    # The rest of the sequence is read and dropped whatever it says.
    data_out(s, 5, ttt, 99, 12345, b'x' * 2048, final=True)
    st, sense = response(s, 5)
    assert protocol_crc_error(st, sense), 'DataSN 0,0: %d %r' % (st, sense[:14])
    nop(s, 1)


@case
def bad_datasn_past_burst_drops():
    # After a wrong DataSN the sequence is still bounded by its burst.
    s = conn()
    login(s)
    scsi_cmd(s, 0, write10(0, 8), 4096, write=True)
    ttt = r2t(s, 5)
    data_out(s, 5, ttt, 3, 0, b'x' * 2048, final=False)
    data_out(s, 5, ttt, 4, 2048, b'x' * 4096, final=True)
    assert closed(s), 'Data-Out past the burst after a bad DataSN: not dropped'


@case
def bad_offset_drops():
    s = conn()
    login(s)
    scsi_cmd(s, 0, write10(0, 8), 4096, write=True)
    h, d = recv_pdu(s)
    ttt = int.from_bytes(h[20:24], 'big')
    s.sendall(pdu(0x05, 0x80, itt=5, w20=ttt,
                  rest=struct.pack('>III', 0, 0, 1 << 30) + b'\0' * 4, data=b'x' * 512))
    assert closed(s), 'bad offset: not dropped'


@case
def huge_write_dropped():
    s = conn()
    login(s)
    scsi_cmd(s, 0, write10(0, 65535), 0xffffffff, write=True)
    r = recv_pdu(s)
    assert r and r[0][0] == 0x3f, 'huge write: no Reject'
    assert closed(s), 'huge write: not dropped'


@case
def vanish_mid_data_out():
    for i in range(8):
        s = conn()
        login(s)
        scsi_cmd(s, 0, write10(0, 2048), 1 << 20, write=True)
        h, d = recv_pdu(s)
        ttt = int.from_bytes(h[20:24], 'big')
        s.sendall(pdu(0x05, 0x00, itt=5, w20=ttt,
                      rest=struct.pack('>III', 0, 0, 0) + b'\0' * 4, data=b'y' * 65536))
        s.close()


@case
def abort_unknown_task():
    s = conn()
    login(s)
    s.sendall(pdu(0x42, 0x81, itt=11, w20=0x1234, w24=0, rest=b'\0' * 16))
    r = recv_pdu(s)
    assert r and r[0][0] == 0x22 and r[0][2] == 1, 'abort of no task: not "no task"'
    nop(s, 0)


@case
def many_commands_then_vanish():
    s = conn()
    login(s)
    for i in range(64):   # reads of 64 KiB, never read back
        scsi_cmd(s, i, struct.pack('>BBIBHB', 0x28, 0, i, 0, 128, 0), 65536,
                 read=True, itt=100 + i)
    s.close()


@case
def discovery_rejects_scsi():
    s = conn()
    login(s, discovery=True)
    scsi_cmd(s, 0, b'\0' * 6, 0)
    r = recv_pdu(s)
    assert r and r[0][0] == 0x3f, 'SCSI command in discovery: no Reject'
    s.sendall(pdu(0x44, 0x80, itt=2, w20=0xffffffff, w24=0, data=b'SendTargets=All\0'))
    r = recv_pdu(s)
    assert r and r[0][0] == 0x24 and IQN.encode() in r[1], 'SendTargets: no target'


failed = 0
for f in cases:
    try:
        f()
        print('ok', f.__name__)
    except Exception as e:   # report and go on: every case runs
        print('FAIL', f.__name__, repr(e))
        failed += 1
sys.exit(1 if failed else 0)
