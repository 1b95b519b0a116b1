"""The MediaPort contract suite and its runs against each media adapter."""
