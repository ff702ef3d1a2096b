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
