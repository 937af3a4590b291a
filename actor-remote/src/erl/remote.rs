//! Calls from this node to BEAM processes.
