package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/decoders"
)

// pcapng section header block type, the first four bytes of a pcapng file.
var pcapngMagic = []byte{0x0a, 0x0d, 0x0d, 0x0a}

// FileSource reads the frames of a pcap or pcapng file.
type FileSource struct {
	f    *os.File
	pcap *pcapgo.Reader
	ng   *pcapgo.NgReader
	// size is the length of an uncompressed pcap file (0: unknown), read
	// the bytes of the records read so far; bytes left over at the end
	// are a truncated last record.
	size, read int64
}

// OpenFile opens a pcap or pcapng capture file. pcap files of versions 2.0
// to 2.3 are read as libpcap reads them (see oldPcap).
func OpenFile(path string) (*FileSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, 1<<16)
	magic, err := br.Peek(4)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: not a capture file: %w", path, err)
	}
	fs := &FileSource{f: f}
	if bytes.Equal(magic, pcapngMagic) {
		fs.ng, err = pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
	} else {
		var r io.Reader = br
		if hdr, perr := br.Peek(pcapFileHeaderLen); perr == nil {
			if order, ok := pcapByteOrder(hdr); ok {
				if order.Uint16(hdr[4:6]) == 2 && order.Uint16(hdr[6:8]) < pcapMinorCurrent {
					r = newOldPcap(br, order, order.Uint16(hdr[6:8]))
				}
				// Not gzip-compressed: the file size is the stream's.
				if st, serr := f.Stat(); serr == nil && st.Mode().IsRegular() {
					fs.size, fs.read = st.Size(), pcapFileHeaderLen
				}
			}
		}
		fs.pcap, err = pcapgo.NewReader(r)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return fs, nil
}

// Close closes the file.
func (fs *FileSource) Close() error { return fs.f.Close() }

// Next returns the next frame and fills m. The frame is valid until the
// next call. It returns io.EOF at the end of the file, and an error
// wrapping ErrTruncatedRecord when a pcap file's last record header is
// not followed by all its data.
func (fs *FileSource) Next(m *Meta) ([]byte, error) {
	var (
		data []byte
		ci   gopacket.CaptureInfo
		err  error
		lt   decoders.LinkType
	)
	if fs.ng != nil {
		data, ci, err = fs.ng.ZeroCopyReadPacketData()
		if err == nil {
			lt = decoders.LinkType(fs.ng.LinkType())
			if iface, ierr := fs.ng.Interface(ci.InterfaceIndex); ierr == nil {
				lt = decoders.LinkType(iface.LinkType)
			}
		}
	} else {
		data, ci, err = fs.pcap.ZeroCopyReadPacketData()
		lt = decoders.LinkType(fs.pcap.LinkType())
		if err == nil {
			fs.read += pcapRecordHeaderLen + int64(len(data))
		} else if fs.size > 0 && errors.Is(err, io.EOF) && fs.read < fs.size {
			err = fmt.Errorf("%w: %d bytes after the last whole record", ErrTruncatedRecord, fs.size-fs.read)
		}
	}
	if err != nil {
		return nil, err
	}
	*m = Meta{
		Time:     ci.Timestamp.UnixNano(),
		Len:      uint32(max(ci.Length, len(data))),
		IfIndex:  int32(ci.InterfaceIndex),
		Role:     flow.RoleReplay,
		LinkType: lt,
	}
	return data, nil
}

// ReplayStats tells how a replay went.
type ReplayStats struct {
	Frames     uint64 // frames handed to the worker
	ReadErrors uint64 // 0 or 1: the file ended in a malformed or truncated record
	LastErr    error  // the read error that ended the replay early (ErrTruncatedRecord, ...), if any
}

// Replay feeds every frame of fs to w, then publishes w's counters. A
// malformed or truncated record ends the replay: it is reported in the
// stats, not as an error, since everything before it was decoded.
func Replay(ctx context.Context, fs *FileSource, w *Worker) (ReplayStats, error) {
	var (
		st ReplayStats
		m  Meta
	)
	defer w.Publish()
	for {
		if st.Frames&1023 == 0 && ctx.Err() != nil {
			return st, ctx.Err()
		}
		data, err := fs.Next(&m)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return st, nil
			}
			st.ReadErrors++
			st.LastErr = err
			return st, nil
		}
		w.Handle(data, &m)
		st.Frames++
	}
}
