module parley.local/pause

go 1.22
