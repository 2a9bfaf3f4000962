"""The quant ladder: every rung quantized, measured against the base and timed (`ladder`), its results
(`results`), the behaviour columns (`ladder_questions`) and what it says (`ladder_report`)."""
