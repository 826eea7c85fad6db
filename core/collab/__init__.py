"""Live collaboration on shared notebooks (issue 15): the Yjs sync and awareness protocol over
the peer channel, the owner's rooms in ``tessera serve``, the client front ends use, presence."""
