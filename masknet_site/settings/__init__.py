"""Settings split: ``base`` plus thin ``dev`` / ``test`` / ``prod`` modules."""
