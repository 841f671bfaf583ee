"""The privacy notice as code (SPEC N10, N12): its versions and amendments, objections to
them, and the register of sub-processors the notice lists."""
