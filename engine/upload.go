package engine

import (
	"github.com/shale-dev/shale/segment"
)

// Objects are uploaded from memory: sealing builds the object as
// segment.Pieces, which references the batches' bytes in their produce
// requests (large ones; small ones and the object's own bytes are copied),
// so a large batch is held once, in its request, from the read of the
// request to the commit; the PUT reads the object from there (a multipart
// upload reads each part at its offset, without copying it), and the local
// read cache gets its copy written beside the PUT (not before it). Only under pressure — when the
// objects already held in memory reach memBudget (half of
// Config.MaxPendingBytes) — is an object built into the spool directory
// instead and uploaded from that file. Back-pressure still counts every
// sealed object, in memory or spooled, against Config.MaxPendingBytes.

// memBudget is how many object bytes may be held in memory.
func (e *Engine) memBudget() int64 { return e.cfg.MaxPendingBytes / 2 }

// reserveMem takes n bytes of the memory budget if they are free.
func (e *Engine) reserveMem(n int64) bool {
	e.spaceMu.Lock()
	defer e.spaceMu.Unlock()
	if e.memBytes+n > e.memBudget() {
		return false
	}
	e.memBytes += n
	return true
}

func (e *Engine) releaseMem(n int64) {
	if n == 0 {
		return
	}
	e.spaceMu.Lock()
	e.memBytes -= n
	e.spaceMu.Unlock()
}

// buildInMemory builds the object into so.data. so.mem bytes of the memory
// budget are already reserved.
func (e *Engine) buildInMemory(so *sealedObject) error {
	p := new(segment.Pieces)
	if err := e.addChunks(so, segment.NewBuilder(p)); err != nil {
		return err
	}
	so.data = p
	so.size = p.Size()
	return nil
}

// addChunks adds every chunk of so to bld and finishes the object. The
// batches drop their request bytes (a Pieces object may still reference
// them).
func (e *Engine) addChunks(so *sealedObject, bld *segment.Builder) error {
	raws := make([][]byte, 0, 16)
	for i := range so.chunks {
		c := &so.chunks[i]
		raws = raws[:0]
		for _, pb := range c.batches {
			raws = append(raws, pb.raw)
		}
		info, err := bld.AddChunk(c.k.id, c.k.p, 0, raws)
		if err != nil {
			return err
		}
		c.info = info
		for j := range c.batches {
			c.batches[j].raw = nil // the object holds them now
		}
	}
	_, err := bld.Finish()
	return err
}

// cacheInMemory writes an in-memory object to the local read cache (beside
// its PUT) and closes so.cached.
func (e *Engine) cacheInMemory(so *sealedObject) {
	defer close(so.cached)
	e.cache.putObject(so.key, so.data)
}

// rangeCRC is the CRC-32C of bytes [pos, pos+size) of the object.
func (so *sealedObject) rangeCRC(pos, size int64) (uint32, error) {
	if so.data != nil {
		return so.data.Checksum(pos, size), nil
	}
	return fileCRC(so.path, pos, size)
}
