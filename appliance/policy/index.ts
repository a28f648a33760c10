/** The policy engine (docs/policy.md): `.klp-policy` files, the relay-path check, violation records. */
export * from './policy.js'
export * from './engine.js'
export * from './recorder.js'
