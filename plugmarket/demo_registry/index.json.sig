{"signatures":[{"keyid":"74b982f892b7209c","sig":"lmjbvOF7SCpcfBIYwq6VxEkyG2E6RJrsThopi3B3fYd+5mm8+A8u/VstIFQevJfAXcH1uN3UoGYHp41eyeaJAw=="}]}
