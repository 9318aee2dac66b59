"""Evaluation: exact-match accuracy with generated tokens, forward passes and time per problem."""

from .metrics import (EvalResult, evaluate, extract_answer, is_correct, method_metrics, stage_target_accuracy,
                      thought_target_exactness)

__all__ = ["EvalResult", "evaluate", "extract_answer", "is_correct", "method_metrics", "stage_target_accuracy",
           "thought_target_exactness"]
