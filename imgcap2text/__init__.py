__version__ = "0.1.0"

import warnings
# tqdm.auto in a Jupyter kernel without ipywidgets (papermill's) warns, then prints text bars, which is what we want there
warnings.filterwarnings('ignore', message='IProgress not found')
