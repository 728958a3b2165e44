"""Alpha agents: one module each, a shared Signal contract (:mod:`.base`), a registry."""
