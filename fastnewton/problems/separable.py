"""placeholder"""
class SeparableLoss:
    pass
