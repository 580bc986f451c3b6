package worker

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Limits of Celery's in-memory revoked set (worker/state.py).
const (
	revokedMax    = 50000
	revokedExpire = 3 * time.Hour
)

// revokedSet holds revoked task ids with the time they were revoked, so a
// task revoked before it arrives is still refused. It can be kept in a file
// (Celery's --statedb) so a restart does not forget it.
type revokedSet struct {
	mu   sync.Mutex // guards ids
	ids  map[string]time.Time
	path string // statedb file; empty: memory only
}

func newRevokedSet(path string) (*revokedSet, error) {
	r := &revokedSet{ids: map[string]time.Time{}, path: path}
	if path == "" {
		return r, nil
	}
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("statedb: %w", err)
	}
	var state struct {
		Revoked map[string]float64 `json:"revoked"`
	}
	if err := json.Unmarshal(data, &state); err != nil {
		return nil, fmt.Errorf("statedb %s is not a qagen state file: %w", path, err)
	}
	for id, at := range state.Revoked {
		r.ids[id] = time.UnixMicro(int64(at * 1e6))
	}
	return r, nil
}

// add revokes ids at time now.
func (r *revokedSet) add(now time.Time, ids ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		r.ids[id] = now
	}
	if len(r.ids) > revokedMax {
		r.purgeLocked(now)
	}
}

// has reports whether id is revoked (and not expired).
func (r *revokedSet) has(now time.Time, id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.ids[id]
	if ok && now.Sub(at) > revokedExpire {
		delete(r.ids, id)
		return false
	}
	return ok
}

// purgeLocked drops expired ids and, beyond the size limit, the oldest.
func (r *revokedSet) purgeLocked(now time.Time) {
	for id, at := range r.ids {
		if now.Sub(at) > revokedExpire {
			delete(r.ids, id)
		}
	}
	if len(r.ids) <= revokedMax {
		return
	}
	type entry struct {
		id string
		at time.Time
	}
	all := make([]entry, 0, len(r.ids))
	for id, at := range r.ids {
		all = append(all, entry{id, at})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })
	// Trim to 90% so a full set does not sort on every add.
	for _, e := range all[:len(all)-revokedMax*9/10] {
		delete(r.ids, e.id)
	}
}

// list returns the revoked ids, sorted.
func (r *revokedSet) list(now time.Time) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.purgeLocked(now)
	out := make([]string, 0, len(r.ids))
	for id := range r.ids {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// snapshot returns id -> epoch seconds, the shape mingle's hello uses.
func (r *revokedSet) snapshot(now time.Time) map[string]float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.purgeLocked(now)
	out := make(map[string]float64, len(r.ids))
	for id, at := range r.ids {
		out[id] = float64(at.UnixMicro()) / 1e6
	}
	return out
}

// merge adds ids revoked elsewhere (hello), keeping the earlier time.
func (r *revokedSet) merge(now time.Time, other map[string]float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, epoch := range other {
		at := time.UnixMicro(int64(epoch * 1e6))
		if old, ok := r.ids[id]; !ok || at.Before(old) {
			r.ids[id] = at
		}
	}
	r.purgeLocked(now)
}

// save writes the state file atomically (write to a temp file, rename).
func (r *revokedSet) save(now time.Time) error {
	if r.path == "" {
		return nil
	}
	data, err := json.Marshal(map[string]any{"revoked": r.snapshot(now)})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(r.path), 0o755); err != nil {
		return err
	}
	tmp := r.path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, r.path)
}
