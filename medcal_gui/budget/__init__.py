"""The memory and disk a step needs, estimated from the model's own figures and checked against what is free
before the step starts (`limits`). Below the engine rooms: each room asks it before it starts, passing its own
figures (the evaluation its cache's folder)."""
