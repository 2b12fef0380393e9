from .pipeline_output import UniViGUPipelineOutput
from .pipeline_univigu import UniViGUPipeline


__all__ = ["UniViGUPipeline", "UniViGUPipelineOutput"]
