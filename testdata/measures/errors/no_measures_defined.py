from ehrql import create_measures

measures = create_measures()
measures.configure_disclosure_control(enabled=False)
