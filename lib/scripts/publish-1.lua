--[[
  Plain pub/sub publish, routed by the topic's hash slot.

  KEYS[1] the topic's pub/sub channel. It is not a key, and nothing reads or writes it as one: it is in
          KEYS only so that the Cluster client sends every publish of a topic to the same node, which
          keeps one publisher's messages in order (a bare PUBLISH goes to a random node).
  ARGV[1] payload
  Returns the number of subscribers (connections) that received it.
]]
return redis.call('PUBLISH', KEYS[1], ARGV[1])
