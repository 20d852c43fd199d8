"""Scale-out on Ray: feature extraction over a cluster and the Table 6 grid as Ray tasks."""
