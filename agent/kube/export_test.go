package kube

// LockStore takes the store's write lock, which the informers' handlers
// wait for, and returns its unlock.
func LockStore(s *Store) func() {
	s.mu.Lock()
	return s.mu.Unlock
}
