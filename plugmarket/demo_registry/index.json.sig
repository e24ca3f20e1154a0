{"signatures":[{"keyid":"74b982f892b7209c","sig":"ZteP49sxOeI+l5TogHTV9VBkdkKsJOKyAxoea+F4pv0AAy8EQTc++crOuPxu/jgpdRTdyYeypoFoPzw1EqRtBw=="}]}
