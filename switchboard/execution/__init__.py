"""Plan once, execute many: the breadth-first executor of validated query operations.

`plan` turns an operation (and the values of the variables its @skip/@include read) into
a tree of field plans once; `plan_cache` keeps them, bounded; `run` executes a plan level
by level, one loader batch per level and no task per field; `executor` is what the
serving paths call: the plan's run, or graphql-core for what the planner does not cover
(counted by reason in `switchboard_execution_fallbacks_total`).
"""
