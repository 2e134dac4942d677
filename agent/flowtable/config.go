package flowtable

import (
	"fmt"
	"log/slog"
	"math/bits"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
)

// Config configures a Table. The zero value (or a nil *Config) means
// defaults for every field.
type Config struct {
	// MaxEntries is the upper bound on flows held at once. Zero means
	// DefaultMaxEntries. The table allocates entries as flows arrive and
	// gives them back as flows end (see the package documentation for the
	// size); it never grows past the bound.
	MaxEntries int
	// Shards is the number of independently locked shards, rounded up to a
	// power of two and lowered so each holds at least 16 entries. Zero
	// means 64. Each shard holds MaxEntries/Shards entries, so with many
	// shards a shard can be full before the whole table is.
	Shards int
	// IdleTimeout removes a flow that has seen no packet for this long.
	// Zero means 60 s.
	IdleTimeout time.Duration
	// ClosedTimeout removes a TCP flow that has seen a RST or FINs from
	// both sides after this long without packets. Zero means 5 s; it is
	// capped at IdleTimeout.
	ClosedTimeout time.Duration
	// ActiveTimeout, when positive, makes the sweep report every flow
	// still active with a non-final record (End == flow.EndActive) each
	// time it has run for this long since its last report. Zero means no
	// such reports.
	ActiveTimeout time.Duration
	// EvictProtect keeps a full shard from evicting a flow that has seen
	// packets from both sides within this duration: such a new flow is
	// refused instead (counted in Stats.Refused). Zero means 1 s; a
	// negative value disables the protection (a new flow always gets in).
	EvictProtect time.Duration
	// EvictSample is the number of entries of a full shard looked at to
	// choose a victim: the one-sided (unanswered) flows first, then the
	// least recently seen. Successive evictions look at successive
	// entries, so every entry is looked at once per Cap/Shards/EvictSample
	// evictions. Zero means 8.
	EvictSample int
	// EvictedBuffer is the number of evicted flows per shard whose records
	// are kept until the next sweep reports them (End == flow.EndEvicted);
	// more are counted in Stats.EvictedLost. Zero means 32; a negative
	// value reports no evicted flows.
	EvictedBuffer int
	// SweepInterval is how often Run sweeps. Zero means 1 s.
	SweepInterval time.Duration
	// BatchSize is the largest batch of records handed to OnRecords. Zero
	// means 256.
	BatchSize int
	// OnRecords receives the records a sweep or a flush emits, in batches
	// of at most BatchSize, from the goroutine that called Sweep, Flush or
	// Run. The slice and its records are reused after the call returns:
	// copy what you keep. OnRecords must not call back into the Table's
	// Sweep, Flush or Run. Nil means the records are dropped (the counters
	// still count them).
	OnRecords func([]flow.Record)
	// Logger receives the table's few log lines (Run start and stop). Nil
	// means slog.Default(). The table adds component=flowtable.
	Logger *slog.Logger
}

// Defaults of Config that the agent's flags show.
const (
	// DefaultMaxEntries is the flows held at once: 65,536 entries of
	// 784 bytes, 49 MiB when the table is full.
	DefaultMaxEntries = 65536
	// DefaultIdleTimeout is how long a flow without packets is kept.
	DefaultIdleTimeout = 60 * time.Second
)

const (
	defaultShards        = 64
	minShardEntries      = 16
	defaultClosedTimeout = 5 * time.Second
	defaultEvictProtect  = time.Second
	defaultEvictSample   = 8
	defaultEvictedBuffer = 32
	defaultSweepInterval = time.Second
	defaultBatchSize     = 256
)

// settings is a Config with defaults applied and durations in nanoseconds.
type settings struct {
	maxEntries    int
	shards        int
	perShard      int
	idle          int64
	closed        int64
	active        int64
	protect       int64 // < 0: none
	sample        int
	evictedBuffer int
	sweepInterval time.Duration
	batchSize     int
	onRecords     func([]flow.Record)
	logger        *slog.Logger
}

func (c *Config) settings() (settings, error) {
	var cfg Config
	if c != nil {
		cfg = *c
	}
	s := settings{
		maxEntries:    orInt(cfg.MaxEntries, DefaultMaxEntries),
		shards:        orInt(cfg.Shards, defaultShards),
		idle:          int64(orDur(cfg.IdleTimeout, DefaultIdleTimeout)),
		closed:        int64(orDur(cfg.ClosedTimeout, defaultClosedTimeout)),
		active:        int64(cfg.ActiveTimeout),
		protect:       int64(orDur(cfg.EvictProtect, defaultEvictProtect)),
		sample:        orInt(cfg.EvictSample, defaultEvictSample),
		evictedBuffer: orInt(cfg.EvictedBuffer, defaultEvictedBuffer),
		sweepInterval: orDur(cfg.SweepInterval, defaultSweepInterval),
		batchSize:     orInt(cfg.BatchSize, defaultBatchSize),
		onRecords:     cfg.OnRecords,
		logger:        cfg.Logger,
	}
	switch {
	case s.maxEntries < 0:
		return s, fmt.Errorf("%w: MaxEntries %d is negative", errConfig, cfg.MaxEntries)
	case s.maxEntries > 1<<30:
		return s, fmt.Errorf("%w: MaxEntries %d is above 2^30", errConfig, cfg.MaxEntries)
	case s.shards < 0:
		return s, fmt.Errorf("%w: Shards %d is negative", errConfig, cfg.Shards)
	case s.idle < 0 || s.closed < 0 || s.active < 0 || s.sweepInterval < 0:
		return s, fmt.Errorf("%w: negative timeout or interval", errConfig)
	case s.sample < 0 || s.batchSize < 0:
		return s, fmt.Errorf("%w: negative EvictSample or BatchSize", errConfig)
	}
	if s.evictedBuffer < 0 {
		s.evictedBuffer = 0
	}
	if s.closed > s.idle {
		s.closed = s.idle
	}
	if s.shards > 1<<16 {
		s.shards = 1 << 16
	}
	s.shards = 1 << bits.Len(uint(s.shards-1))
	for s.shards > 1 && s.maxEntries/s.shards < minShardEntries {
		s.shards /= 2
	}
	s.perShard = s.maxEntries / s.shards
	if s.perShard < 1 {
		s.perShard = 1
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	s.logger = s.logger.With("component", "flowtable")
	return s, nil
}

func orInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func orDur(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}
