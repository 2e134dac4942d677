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
}

// OpenFile opens a pcap or pcapng capture file.
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
		fs.pcap, err = pcapgo.NewReader(br)
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
// next call. It returns io.EOF at the end of the file.
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
	ReadErrors uint64 // 0 or 1: the file ended in a malformed record
	LastErr    error  // the read error that ended the replay early, if any
}

// Replay feeds every frame of fs to w, then publishes w's counters. A
// malformed record ends the replay: it is reported in the stats, not as an
// error, since everything before it was decoded.
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
