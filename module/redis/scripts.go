package redis

import (
	_ "embed" // the Lua scripts

	goredis "github.com/redis/go-redis/v9"
)

// metaLua is the prelude of every script (lua/meta.lua): it reads the
// hub's meta hash and starts a new epoch when Redis lost the hub's keys.
//
//go:embed lua/meta.lua
var metaLua string

//go:embed lua/append.lua
var appendLua string

//go:embed lua/read.lua
var readLua string

// appendScript appends a batch of publications atomically (lua/append.lua).
var appendScript = goredis.NewScript(metaLua + appendLua)

// readScript answers the meta data, Redis's clock and a range of entries
// (lua/read.lua).
var readScript = goredis.NewScript(metaLua + readLua)

//go:embed lua/head.lua
var headLua string

//go:embed lua/lost.lua
var lostLua string

//go:embed lua/check.lua
var checkLua string

// headScript answers the meta hash's epoch, count and last ID and Redis's
// clock, after each XREAD (lua/head.lua).
var headScript = goredis.NewScript(headLua)

// lostScript starts a new epoch when Redis lost acknowledged events
// (lua/lost.lua).
var lostScript = goredis.NewScript(lostLua)

// checkScript lists the needed commands the ACL user may not run
// (lua/check.lua).
var checkScript = goredis.NewScript(checkLua)

//go:embed lua/presence.lua
var presenceLua string

//go:embed lua/hold.lua
var holdLua string

//go:embed lua/beat.lua
var beatLua string

//go:embed lua/snapshot.lua
var snapshotLua string

// holdScript changes what a node holds and decides the presence changes
// and webhooks that follow (lua/hold.lua).
var holdScript = goredis.NewScript(presenceLua + holdLua)

// beatScript is a node's heartbeat and the sweep for dead nodes
// (lua/beat.lua).
var beatScript = goredis.NewScript(presenceLua + beatLua)

// snapshotScript reads a channel's members and the position they are as
// of (lua/snapshot.lua).
var snapshotScript = goredis.NewScript(snapshotLua)

//go:embed lua/whadd.lua
var whAddLua string

//go:embed lua/whread.lua
var whReadLua string

//go:embed lua/whack.lua
var whAckLua string

//go:embed lua/whlease.lua
var whLeaseLua string

// The webhook queue's scripts: queue client events, take the lease and
// read, acknowledge and trim, renew or release the lease.
var (
	whAddScript   = goredis.NewScript(whAddLua)
	whReadScript  = goredis.NewScript(whReadLua)
	whAckScript   = goredis.NewScript(whAckLua)
	whLeaseScript = goredis.NewScript(whLeaseLua)
)
