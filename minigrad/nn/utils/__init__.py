"""torch.nn.utils: re-exports only — gradient clipping, GradBuffer, the adaptive clippers, the norm monitor,
Pascanu's regularizer, parameters as one vector, and the rnn helpers in nn.utils.rnn."""
from minigrad.nn.utils.adaptive import AutoClip, adaptive_clip_grad_
from minigrad.nn.utils.clip_grad import clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm
from minigrad.nn.utils.convert_parameters import parameters_to_vector, vector_to_parameters
from minigrad.nn.utils.grad_buffer import GradBuffer
from minigrad.nn.utils.monitor import GradNormMonitor
from minigrad.nn.utils.vanishing import vanishing_gradient_regularizer_

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_", "GradBuffer", "AutoClip",
           "adaptive_clip_grad_", "GradNormMonitor", "vanishing_gradient_regularizer_", "parameters_to_vector",
           "vector_to_parameters"]
