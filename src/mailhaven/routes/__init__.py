"""PLACEHOLDER (intake's worktree only): the routes builder owns this package."""
