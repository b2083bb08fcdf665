package fencedmap

import (
	"sync"
	"testing"
)

func never(*int) bool { return false }

func TestStoreAfterAnInvalidationStoresNothing(t *testing.T) {
	m := New[string, int](10)
	one := 1
	gen := m.Gen()
	m.Delete("other") // any invalidation while "a" was being read
	m.Store("a", &one, gen, never)
	if m.Load("a") != nil || m.Len() != 0 {
		t.Fatal("an answer read before an invalidation was stored")
	}
	gen = m.Gen()
	m.Purge()
	m.Store("a", &one, gen, never)
	if m.Load("a") != nil {
		t.Fatal("an answer read before a purge was stored")
	}
	m.Store("a", &one, m.Gen(), never)
	if got := m.Load("a"); got != &one || m.Len() != 1 {
		t.Fatalf("Load = %v, Len = %d after a fresh store", got, m.Len())
	}
}

func TestFullMapEvictsAStaleEntryFirst(t *testing.T) {
	m := New[int, int](8)
	vals := make([]int, 9)
	for i := range 8 {
		vals[i] = i
		m.Store(i, &vals[i], m.Gen(), never)
	}
	vals[8] = 8
	m.Store(8, &vals[8], m.Gen(), func(v *int) bool { return *v == 5 })
	if m.Len() != 8 || m.Load(5) != nil || m.Load(8) == nil {
		t.Fatalf("Len %d, 5 kept: %v, 8 stored: %v", m.Len(), m.Load(5) != nil, m.Load(8) != nil)
	}
}

func TestBoundedUnderConcurrentStores(t *testing.T) {
	m := New[int, int](64)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2_000 {
				v := i
				switch k := (i*7 + g) % 300; {
				case i%50 == 0:
					m.Delete(k)
				case i%97 == 0 && g == 0:
					m.Purge()
				default:
					m.Store(k, &v, m.Gen(), never)
				}
			}
		}()
	}
	wg.Wait()
	n := 0
	m.m.Range(func(any, any) bool { n++; return true })
	if m.Len() > 64 || m.Len() != n {
		t.Fatalf("Len %d (counted %d) with size 64", m.Len(), n)
	}
}
