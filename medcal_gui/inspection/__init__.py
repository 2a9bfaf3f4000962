"""What a GGUF model is and what to watch for before calibrating and quantizing it (`medcal inspect`, the
window's model card): read from its header, with the quant-type names from quantize/ and the template check
from chat/, so it sits above both rooms."""
