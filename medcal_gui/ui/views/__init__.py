"""Result views: chat, evaluation figures, answers and questions, the quant ladder."""
