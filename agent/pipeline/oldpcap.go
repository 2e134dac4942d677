package pipeline

import (
	"encoding/binary"
	"io"
)

// pcap file layout (the tcpdump/libpcap savefile format).
const (
	pcapFileHeaderLen   = 24
	pcapRecordHeaderLen = 16
	pcapMinorCurrent    = 4 // version 2.4, the one pcapgo reads
)

// pcapByteOrder returns the byte order of a pcap file header, from its
// magic number (microsecond or nanosecond timestamps).
func pcapByteOrder(hdr []byte) (binary.ByteOrder, bool) {
	switch binary.LittleEndian.Uint32(hdr) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		return binary.LittleEndian, true
	case 0xd4c3b2a1, 0x4d3cb2a1:
		return binary.BigEndian, true
	}
	return nil, false
}

// oldPcap presents a pcap stream of version 2.0 to 2.3 as version 2.4.
// The formats differ in one point: libpcap before 2.3 wrote each record
// header's captured length and original length swapped, and 2.3 files
// hold them either way round (the captured length is the smaller one).
// libpcap and Wireshark read such files by swapping the two back; so does
// oldPcap, record by record, and it rewrites the header's minor version.
type oldPcap struct {
	r      io.Reader
	order  binary.ByteOrder
	minor  uint16
	header bool // the file header has been read
	left   int  // data bytes of the current record still to pass on
	buf    [pcapFileHeaderLen]byte
	out    []byte // rewritten header bytes still to pass on
}

func newOldPcap(r io.Reader, order binary.ByteOrder, minor uint16) *oldPcap {
	return &oldPcap{r: r, order: order, minor: minor}
}

func (o *oldPcap) Read(p []byte) (int, error) {
	if len(o.out) == 0 && o.left == 0 {
		if err := o.next(); err != nil {
			return 0, err
		}
	}
	if len(o.out) > 0 {
		n := copy(p, o.out)
		o.out = o.out[n:]
		return n, nil
	}
	if len(p) > o.left {
		p = p[:o.left]
	}
	n, err := o.r.Read(p)
	o.left -= n
	return n, err
}

// next reads the file header or the next record header into o.out. A
// header cut by the end of the file is passed on as it is: the reader
// behind sees the same short file.
func (o *oldPcap) next() error {
	hl := pcapRecordHeaderLen
	if !o.header {
		hl = pcapFileHeaderLen
	}
	n, err := io.ReadFull(o.r, o.buf[:hl])
	if n == 0 {
		return err
	}
	o.out = o.buf[:n]
	if n < hl {
		return nil
	}
	if !o.header {
		o.header = true
		o.order.PutUint16(o.buf[6:8], pcapMinorCurrent)
		return nil
	}
	incl, orig := o.order.Uint32(o.buf[8:12]), o.order.Uint32(o.buf[12:16])
	if o.minor < 3 || incl > orig {
		incl, orig = orig, incl
		o.order.PutUint32(o.buf[8:12], incl)
		o.order.PutUint32(o.buf[12:16], orig)
	}
	o.left = int(incl)
	return nil
}
