package state

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Memory is an in-process Store for tests. Generations come from one
// counter for the whole store, so a key that is deleted and created again
// never reuses a generation (as in Cloud Storage): a writer holding the old
// generation still gets ErrConflict.
type Memory struct {
	mu      sync.Mutex
	objects map[string]Object
	lastGen int64
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory store.
func NewMemory() *Memory {
	return &Memory{objects: make(map[string]Object)}
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, key string) (Object, error) {
	if err := ValidateKey(key); err != nil {
		return Object{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	obj, ok := m.objects[key]
	if !ok {
		return Object{}, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	return Object{Data: slices.Clone(obj.Data), Generation: obj.Generation}, nil
}

// Put implements Store.
func (m *Memory) Put(_ context.Context, key string, data []byte, ifGeneration int64) (int64, error) {
	if err := ValidateKey(key); err != nil {
		return 0, err
	}
	if err := ValidateData(data); err != nil {
		return 0, fmt.Errorf("put %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.objects[key].Generation // 0 when absent
	if cur != ifGeneration {
		return 0, fmt.Errorf("put %s if generation %d (now %d): %w", key, ifGeneration, cur, ErrConflict)
	}
	m.lastGen++
	m.objects[key] = Object{Data: slices.Clone(data), Generation: m.lastGen}
	return m.lastGen, nil
}

// Delete implements Store.
func (m *Memory) Delete(_ context.Context, key string, ifGeneration int64) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	obj, ok := m.objects[key]
	if !ok {
		return fmt.Errorf("delete %s: %w", key, ErrNotFound)
	}
	if ifGeneration != 0 && obj.Generation != ifGeneration {
		return fmt.Errorf("delete %s if generation %d (now %d): %w", key, ifGeneration, obj.Generation, ErrConflict)
	}
	delete(m.objects, key)
	return nil
}

// List implements Store.
func (m *Memory) List(_ context.Context, prefix string) ([]string, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for k := range m.objects {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}
