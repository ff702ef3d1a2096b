package hub

// subscriptions are a session's subscriptions, by channel. A small slice
// rather than a map: a session has a handful (at most max_subscriptions),
// every idle connection keeps them, and a Go map costs a few hundred bytes
// even for one entry. Lookups are linear in the session's subscriptions,
// which is cheap for the counts a policy allows. Guarded by Hub.mu.
type subscriptions []*subscription

// get returns the subscription of channel, or nil.
func (ss subscriptions) get(channel string) *subscription {
	for _, sub := range ss {
		if sub.channel == channel {
			return sub
		}
	}
	return nil
}

// add appends sub; its channel must not be there yet.
func (ss *subscriptions) add(sub *subscription) { *ss = append(*ss, sub) }

// remove takes out the subscription of channel and returns it, or nil.
func (ss *subscriptions) remove(channel string) *subscription {
	for i, sub := range *ss {
		if sub.channel == channel {
			last := len(*ss) - 1
			(*ss)[i] = (*ss)[last]
			(*ss)[last] = nil
			*ss = (*ss)[:last]
			if len(*ss) == 0 {
				*ss = nil // an idle session keeps no array
			}
			return sub
		}
	}
	return nil
}
