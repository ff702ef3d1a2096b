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
