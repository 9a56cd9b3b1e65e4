"""The course's networks, one file per family (lessons 03-11); the judge measures them all."""
