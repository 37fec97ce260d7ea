//! Step logic, one module per step, generic over the ports.
